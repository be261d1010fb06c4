"""A table pane paged and filtered in SQL: the widget never holds more than one page.

Reloads are live-friendly: when a reload brings the same rows in the same order (the usual case
while events arrive), only the cells that changed are rewritten, so the cursor and the scroll
position stay exactly where the reader left them. When rows come and go, the cursor follows its
row by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Checkbox, DataTable, Input, Select, Static
from textual.widgets.data_table import ColumnKey
from textual.worker import get_current_worker

from badgetui.tui.messages import DataChanged
from badgetui.tui.widgets.pane import Pane
from badgetui.tui.widgets.table import LiveTable
from badgetui.tui.widgets.template_select import TemplateSelect

PAGE = 200

Row = tuple[str, Sequence[Any]]
Filters = dict[str, Any]


def when(iso: str | None) -> str:
    """An ISO timestamp as a table shows it: date and minutes, UTC."""
    return (iso or "")[:16].replace("T", " ")


def count_label(count: int | None, cap: int) -> str:
    if count is None:
        return ""
    return f"{cap:,}+" if count > cap else f"{count:,}"


class PageLoaded(Message):
    def __init__(self, rows: list[Row], page: int, more: bool, total: int | None) -> None:
        super().__init__()
        self.rows = rows
        self.page = page
        self.more = more
        self.total = total


class PagedTablePane(Pane):
    """Subclasses set COLUMNS, add filter widgets in `compose_filters()` (ids become the keys
    of `filters()`), and implement `fetch(filters, limit, offset)` → [(key, cells)] and
    optionally `count(filters)`."""

    COLUMNS: tuple[str, ...] = ()
    PLACEHOLDER = "learner (username starts with)"
    #: Counts above this show as "N+" (the query layer stops counting there).
    COUNT_CAP = 100_000
    BINDINGS = [
        Binding("pagedown,ctrl+f", "next_page", "Next page", id="page.next"),
        Binding("pageup,ctrl+b", "prev_page", "Prev page", id="page.prev"),
        Binding("slash", "focus_filter", "Filter", id="filter"),
    ]

    page: reactive[int] = reactive(0, bindings=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("pane")
        self._more = False
        self._columns: list[ColumnKey] = []
        self.loads = 0  # pages shown so far; tests and benchmarks wait on it
        self._to_top = False  # a new page or filter starts at its first row

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder=self.PLACEHOLDER, id="text")
            yield from self.compose_filters()
        table: DataTable[Any] = LiveTable(cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", classes="pager")

    def compose_filters(self) -> Iterable[Any]:
        return ()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._columns = table.add_columns(*self.COLUMNS)
        self.reload()

    # -- data ----------------------------------------------------------------------------
    def filters(self) -> Filters:
        """The toolbar's values by widget id; empty text and unset choices are None."""
        values: Filters = {}
        for widget in self.query_one(".toolbar").query("Input, Select, Checkbox"):
            key = (widget.id or "").replace("-", "_")
            if isinstance(widget, Input):
                values[key] = widget.value.strip() or None
            elif isinstance(widget, Select):
                values[key] = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, Checkbox):
                values[key] = widget.value
        return values

    def fetch(self, filters: Filters, limit: int, offset: int) -> list[Row]:
        raise NotImplementedError

    def count(self, filters: Filters) -> int | None:
        return None

    def reload(self) -> None:
        self.load(self.filters(), self.page)

    @work(thread=True, exclusive=True, group="page", exit_on_error=False)
    def load(self, filters: Filters, page: int) -> None:
        rows = self.fetch(filters, PAGE + 1, page * PAGE)
        if get_current_worker().is_cancelled:
            return
        total = self.count(filters)
        if not get_current_worker().is_cancelled:
            self.post_message(PageLoaded(rows[:PAGE], page, len(rows) > PAGE, total))

    @on(PageLoaded)
    def _loaded(self, message: PageLoaded) -> None:
        table = self.query_one(DataTable)
        keys = [key for key, _ in message.rows]
        shown = [row.key.value for row in table.ordered_rows]
        if keys and keys == shown:
            self._update_in_place(table, message.rows)
        else:
            self._rebuild(table, message.rows)
        self._to_top = False
        self._more = message.more
        first = message.page * PAGE + 1 if message.rows else 0
        last = message.page * PAGE + len(message.rows)
        total = count_label(message.total, self.COUNT_CAP)
        label = f"rows {first:,}–{last:,}" if message.rows else "no rows"
        if total and message.rows:
            label += f" of {total}"
        if message.more:
            label += "  (PgDn: next page)"
        if message.page:
            label += "  (PgUp: previous)"
        self.query_one(".pager", Static).update(label)
        self.loads += 1

    def _update_in_place(self, table: DataTable[Any], rows: list[Row]) -> None:
        for key, cells in rows:
            current = table.get_row(key)
            for column, old, new in zip(self._columns, current, cells, strict=False):
                if old != new:
                    table.update_cell(key, column, new)

    def _rebuild(self, table: DataTable[Any], rows: list[Row]) -> None:
        cursor_key = None
        if table.row_count:
            cursor_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        cursor = table.cursor_row
        with self.app.batch_update():
            table.clear()
            if self._to_top:
                # A new filter or page: widths fit its rows, so one failed badge does not keep
                # the width of ids no longer shown (pushing its error off screen). Live
                # reloads keep the widths: columns do not jump while events arrive.
                for column in table.columns.values():
                    if column.auto_width:
                        column.content_width = column.width  # the label's width
            for key, cells in rows:
                table.add_row(*cells, key=key)
        if rows:
            keys = [key for key, _ in rows]
            if self._to_top:
                target = 0
            elif cursor_key in keys:
                target = keys.index(cursor_key)
            else:
                target = min(cursor, len(rows) - 1)
            table.move_cursor(row=target, animate=False)

    def selected_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    # -- filters and paging --------------------------------------------------------------
    @on(Input.Changed, ".toolbar Input")
    @on(Select.Changed, ".toolbar Select")
    @on(Checkbox.Changed, ".toolbar Checkbox")
    def _filter(self) -> None:
        self.page = 0
        self._to_top = True
        self.reload()

    @on(Input.Submitted, ".toolbar Input")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    @on(DataChanged)
    def _changed(self, message: DataChanged) -> None:
        if message.what != "live":
            for select in self.query(TemplateSelect):
                select.load_choices()
        self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "prev_page" and self.page <= 0:
            return None
        if action == "next_page" and not self._more:
            return None
        return True

    def action_next_page(self) -> None:
        if self._more:
            self.page += 1
            self._to_top = True
            self.reload()

    def action_prev_page(self) -> None:
        if self.page > 0:
            self.page -= 1
            self._to_top = True
            self.reload()

    def action_focus_filter(self) -> None:
        self.query_one("#text", Input).focus()
