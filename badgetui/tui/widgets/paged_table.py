"""A table pane paged and filtered in SQL: the widget never holds more than one page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from badgetui.tui.messages import DataChanged
from badgetui.tui.widgets.pane import Pane

PAGE = 200


def when(iso: str | None) -> str:
    """An ISO timestamp as a table shows it: date and minutes, UTC."""
    return (iso or "")[:16].replace("T", " ")


class PageLoaded(Message):
    def __init__(self, rows: list[tuple[str, Sequence[Any]]], page: int, more: bool) -> None:
        super().__init__()
        self.rows = rows
        self.page = page
        self.more = more


class PagedTablePane(Pane):
    """Subclasses set COLUMNS and implement `fetch(text, limit, offset)` → [(key, cells)]."""

    COLUMNS: tuple[str, ...] = ()
    PLACEHOLDER = "filter"
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

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder=self.PLACEHOLDER, id="filter")
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", classes="pager")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*self.COLUMNS)
        self.reload()

    def fetch(self, text: str, limit: int, offset: int) -> list[tuple[str, Sequence[Any]]]:
        raise NotImplementedError

    def reload(self) -> None:
        self.load(self.query_one("#filter", Input).value.strip(), self.page)

    @work(thread=True, exclusive=True, group="page", exit_on_error=False)
    def load(self, text: str, page: int) -> None:
        rows = self.fetch(text, PAGE + 1, page * PAGE)
        if not get_current_worker().is_cancelled:
            self.post_message(PageLoaded(rows[:PAGE], page, len(rows) > PAGE))

    @on(PageLoaded)
    def _loaded(self, message: PageLoaded) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        with self.app.batch_update():
            table.clear()
            for key, cells in message.rows:
                table.add_row(*cells, key=key)
        if message.rows:
            table.move_cursor(row=min(cursor, len(message.rows) - 1))
        self._more = message.more
        first = message.page * PAGE + 1 if message.rows else 0
        last = message.page * PAGE + len(message.rows)
        self.query_one(".pager", Static).update(
            f"rows {first}–{last}" + (" (more: PgDn)" if message.more else ""))

    @on(Input.Changed, "#filter")
    def _filter(self) -> None:
        self.page = 0
        self.reload()

    @on(DataChanged)
    def _changed(self) -> None:
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
            self.reload()

    def action_prev_page(self) -> None:
        if self.page > 0:
            self.page -= 1
            self.reload()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()
