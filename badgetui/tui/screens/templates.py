"""Templates: every template of every account; filter, toggle activation, open the editor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Select, Static
from textual.worker import get_current_worker

from badgetui.services.common import ServiceError
from badgetui.services.templates import PROVIDERS, TemplateView
from badgetui.tui.messages import DataChanged, OpenTemplate
from badgetui.tui.screens.form_parts import text, theme_color
from badgetui.tui.widgets.pane import Pane

#: Name and the columns an operator acts on first; provider and account last (they scroll).
COLUMNS = (
    ("name", "Name"), ("state", "State"), ("active", "Active"), ("requirements", "Reqs"),
    ("awarded", "Awarded"), ("provider", "Provider"), ("account", "Account"),
)
#: Provider-side states the state filter offers, then the local ones (not seen / deleted).
STATES = ("active", "draft", "archived")
LOCAL_STATES = ("stale", "deleted")


@dataclass(frozen=True, slots=True)
class TemplateFilter:
    text: str = ""
    provider: str | None = None
    state: str | None = None
    active: bool | None = None


class TemplatesLoaded(Message):
    def __init__(self, views: list[TemplateView], flt: TemplateFilter) -> None:
        super().__init__()
        self.views = views
        self.filter = flt


class TemplateToggled(Message):
    """An activation change was saved (`view`) or refused (`reason`)."""

    def __init__(self, template_id: int, view: TemplateView | None, reason: str = "", *,
                 preview: Any = None) -> None:
        super().__init__()
        self.template_id = template_id
        self.view = view
        self.reason = reason
        #: After an activation: the backfill preview (a BackfillReport), offered when it
        #: found recorded events to replay.
        self.preview = preview


def state_label(view: TemplateView) -> str:
    if view.deleted:
        return f"{view.state}, deleted"
    if view.stale:
        return f"{view.state}, stale"
    return view.state


class TemplateTable(DataTable[Any]):
    """The templates, one row per template keyed by its id."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="templates.open"),
        Binding("space", "toggle_active", "Activate", id="templates.toggle",
                tooltip="Activate or deactivate the template"),
    ]

    class ToggleRequested(Message):
        def __init__(self, template_id: int) -> None:
            super().__init__()
            self.template_id = template_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    @property
    def current_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None

    def action_toggle_active(self) -> None:
        template_id = self.current_id
        if template_id is not None:
            self.post_message(self.ToggleRequested(template_id))


class TemplatesPane(Pane):
    """All templates with their state, activation, requirement count and badges awarded."""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="templates.filter"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("pane", "templates-pane")
        self.views: dict[int, TemplateView] = {}
        self.notice: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        # The table comes first so that the tab (and its key) focuses it; the toolbar docks on top.
        yield TemplateTable(id="templates-table")
        with Horizontal(classes="toolbar templates-toolbar"):
            yield Input(placeholder="filter: name or external id", id="templates-filter")
            yield Select([(p.title(), p) for p in PROVIDERS], prompt="provider",
                         id="templates-provider", tooltip="Only this provider")
            yield Select([(s, s) for s in (*STATES, *LOCAL_STATES)], prompt="state",
                         id="templates-state", tooltip="Only templates in this state")
            yield Select([("active", True), ("inactive", False)], prompt="activation",
                         id="templates-active", tooltip="Only active or only inactive ones")
        yield Static("", id="templates-message", classes="message")

    def on_mount(self) -> None:
        table = self.query_one(TemplateTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.reload()

    # -- loading -------------------------------------------------------------------------
    @property
    def filter(self) -> TemplateFilter:
        def value(selector: str) -> Any:
            selected = self.query_one(selector, Select).value
            return None if selected is Select.NULL else selected

        return TemplateFilter(self.query_one("#templates-filter", Input).value.strip(),
                              value("#templates-provider"), value("#templates-state"),
                              value("#templates-active"))

    def reload(self) -> None:
        self.load(self.filter)

    @work(thread=True, exclusive=True, group="templates", exit_on_error=False,
          name="templates")
    def load(self, flt: TemplateFilter) -> None:
        state = flt.state if flt.state not in LOCAL_STATES else None
        views = self.badge_app.services.templates.list(
            provider=flt.provider, active=flt.active, text=flt.text or None, state=state)
        if flt.state in LOCAL_STATES:
            views = [v for v in views if getattr(v, flt.state)]
        if not get_current_worker().is_cancelled:
            self.post_message(TemplatesLoaded(views, flt))

    @on(DataChanged)
    def _changed(self, message: DataChanged) -> None:
        message.stop()
        self.reload()

    @on(Input.Changed, "#templates-filter")
    @on(Select.Changed)
    def _filter_changed(self, event: Input.Changed | Select.Changed) -> None:
        event.stop()
        self.notice = None
        self.reload()

    @on(Input.Submitted, "#templates-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(TemplateTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#templates-filter", Input).focus()

    def cells(self, view: TemplateView) -> tuple[Text, ...]:
        active = (Text("active", style=f"bold {theme_color(self, 'success')}") if view.active
                  else Text("-", style=theme_color(self, "text-muted")))
        state = text(state_label(view))
        if view.stale or view.deleted:
            state.stylize(theme_color(self, "warning"))
        return (text(view.name), state, active, Text(str(view.requirements), justify="right"),
                Text(str(view.awarded), justify="right"), text(view.provider), text(view.account))

    @on(TemplatesLoaded)
    def _loaded(self, message: TemplatesLoaded) -> None:
        table = self.query_one(TemplateTable)
        fresh = {v.id: v for v in message.views}
        current = table.current_id
        with self.app.batch_update():
            if [int(k.value or 0) for k in table.rows] == list(fresh):
                for view in message.views:
                    if view != self.views.get(view.id):
                        self._update_row(view)
            else:
                table.clear()
                for view in message.views:
                    table.add_row(*self.cells(view), key=str(view.id))
                if current in fresh:
                    table.move_cursor(row=table.get_row_index(str(current)), animate=False)
        self.views = fresh
        self._show_message()

    def _show_message(self) -> None:
        """The line under the table: the last activation result, else counts and keys."""
        if self.notice:
            line, level = self.notice
        else:
            active = sum(v.active for v in self.views.values())
            noun = "template" if len(self.views) == 1 else "templates"
            line, level = (f"{len(self.views)} {noun}, {active} active.  "
                           "space: activate/deactivate  enter: open  /: filter"), ""
        message = self.query_one("#templates-message", Static)
        message.update(Text(line))
        message.set_class(level == "warning", "-warning")

    def _say(self, line: str, level: str = "") -> None:
        self.notice = (line, level)
        self._show_message()

    def _update_row(self, view: TemplateView) -> None:
        table = self.query_one(TemplateTable)
        for (column, _), cell in zip(COLUMNS, self.cells(view), strict=True):
            table.update_cell(str(view.id), column, cell)
        self.views[view.id] = view

    @on(DataTable.RowSelected, "#templates-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(OpenTemplate(int(event.row_key.value)))

    # -- activation ----------------------------------------------------------------------
    @on(TemplateTable.ToggleRequested)
    def _toggle(self, message: TemplateTable.ToggleRequested) -> None:
        view = self.views.get(message.template_id)
        if view is not None:
            self.toggle(view.id, not view.active)

    @work(thread=True, group="templates-toggle", exit_on_error=False, name="activation")
    def toggle(self, template_id: int, active: bool) -> None:
        services = self.badge_app.services
        try:
            view = services.templates.set_active(template_id, active)
        except ServiceError as exc:
            self.post_message(TemplateToggled(template_id, None, str(exc)))
            return
        preview = None
        if active:  # offer a backfill when the log holds events the template would have seen
            try:
                preview = services.backfill.run(template_id, dry_run=True)
            except ServiceError:
                preview = None
        self.post_message(TemplateToggled(template_id, view, preview=preview))

    @on(TemplateToggled)
    def _toggled(self, message: TemplateToggled) -> None:
        if message.view is None:
            self._say(message.reason, "warning")
            self.notify(message.reason, title="not activated", severity="warning")
            return
        view = message.view
        if view.id in self.views:
            self._update_row(view)
        verb = "activated" if view.active else "deactivated"
        self._say(f"{view.name}: {verb}.")
        self.badge_app.broadcast_change("activation")
        if message.preview is not None and message.preview.events:
            from badgetui.tui.screens.backfill_dialog import BackfillScreen

            self.app.push_screen(BackfillScreen(view.id, view.name, message.preview))
