"""The application shell: tabs, status line, command palette, one error route."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.tui.commands import JumpCommands
from badgetui.tui.errors import one_line
from badgetui.tui.messages import DataChanged, OpenTemplate, RunSync, ShowLearner, StatusLoaded

LIVE_TABS = ("progress", "badges", "events")

TABS = (
    ("providers", "Providers", "p"),
    ("templates", "Templates", "t"),
    ("progress", "Progress", "g"),
    ("badges", "Badges", "b"),
    ("events", "Events", "e"),
)


class StatusLine(Static):
    """Delivery queue, failures, key warnings and the database, refreshed in the background."""

    def show(self, status: dict[str, Any]) -> None:
        parts = [f"queue {status['queued']}"]
        if status["failed"]:
            parts.append(f"[b $error]failed {status['failed']}[/]")
        for name in status["paused"]:
            parts.append(f"[b $warning]delivery paused: {name}[/]")
        for warning in status["warnings"]:
            parts.append(f"[b $warning]{warning}[/]")
        parts.append(f"db {status['database']}")
        self.update("  │  ".join(parts))


class BadgeApp(App[None]):
    """badgetui's console."""

    CSS_PATH = "badgetui.tcss"
    COMMANDS = App.COMMANDS | {JumpCommands}
    TITLE = "badgetui"
    SUB_TITLE = "Open edX badges on Credly and Accredible"

    BINDINGS = [
        *[Binding(key, f"show_tab('{tab}')", label, id=f"tab.{tab}")
          for tab, label, key in TABS],
        *[Binding(str(n), f"show_tab('{tab}')", label, show=False)
          for n, (tab, label, _) in enumerate(TABS, start=1)],
        Binding("ctrl+r", "refresh", "Refresh", id="refresh"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, services: Services, settings: Settings) -> None:
        super().__init__()
        self.services = services
        self.settings = settings
        #: Seconds between refreshes of the visible live pane (progress, badges, events), so
        #: work done by other processes (a consumer, `events ingest`, delivery) shows up.
        self.live_refresh: float | None = 2.0
        self._delivery_halt: threading.Event | None = None  # set: stop delivering

    def compose(self) -> ComposeResult:
        from badgetui.tui.screens.badges import BadgesPane
        from badgetui.tui.screens.events import EventsPane
        from badgetui.tui.screens.progress import ProgressPane
        from badgetui.tui.screens.providers import ProvidersPane
        from badgetui.tui.screens.templates import TemplatesPane

        panes = {
            "providers": ProvidersPane, "templates": TemplatesPane, "progress": ProgressPane,
            "badges": BadgesPane, "events": EventsPane,
        }
        yield Header()
        with TabbedContent(initial="templates", id="tabs"):
            for tab, label, _ in TABS:
                with TabPane(label, id=tab):
                    yield panes[tab](id=f"{tab}-pane")
        yield StatusLine(id="status")
        yield Footer()

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """Quit; a delivery in flight stops at once (its jobs go back to the queue when the
        lease ends), so quitting never waits on a provider."""
        halt = self._delivery_halt
        if halt is not None:
            halt.set()
        super().exit(*args, **kwargs)

    def on_mount(self) -> None:
        self.call_after_refresh(self._initial_focus)
        self.load_status()
        self.set_interval(3.0, self.load_status)
        if self.live_refresh:
            self.set_interval(self.live_refresh, self._live_tick)

    def _live_tick(self) -> None:
        """Refresh the live pane on show (one page: cheap); hidden ones refresh when shown."""
        if len(self.screen_stack) > 1 and not self.screen.is_modal:
            return
        tab = self.query_one(TabbedContent).active
        if tab in LIVE_TABS:
            self.query_one(f"#{tab}-pane").post_message(DataChanged("live"))

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id
        if tab in LIVE_TABS:
            self.query_one(f"#{tab}-pane").post_message(DataChanged("live"))

    @work(thread=True, exclusive=True, group="delivery", exit_on_error=False, name="delivery")
    def deliver(self) -> None:
        """Send queued issue/revoke jobs now (after a retry, revoke, re-send or ingest).
        Leases keep this safe beside a `badgetui deliver` worker or the demo's."""
        halt = self._delivery_halt = threading.Event()
        try:
            report = asyncio.run(self.services.delivery.run(until_idle=True, stop=halt))
        finally:
            self._delivery_halt = None
        if not get_current_worker().is_cancelled and sum(report.counts.values()):
            self.call_from_thread(self.broadcast_change, "delivery")

    # -- tabs and actions ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # On the editor and other pushed screens the tab keys are hidden: escape goes back.
        return not (action == "show_tab" and len(self.screen_stack) > 1)

    def action_show_tab(self, tab: str) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.query_one(TabbedContent).active = tab
        pane = self.query_one(f"#{tab}-pane")
        # The table, not a filter box: single-key navigation keeps working after a switch.
        for selector in ("DataTable", "Input"):
            found = pane.query(selector)
            if found:
                found.first().focus()
                break

    def _initial_focus(self) -> None:
        """Start on the templates table, so its keys (space, enter) work at once.

        Also the moment to `gc.freeze()`: everything built so far lives as long as the app,
        and leaving it out of collections removes 100 ms pauses from later actions."""
        gc.freeze()
        if self.focused is None and len(self.screen_stack) == 1:
            tables = self.query_one("#templates-pane").query("DataTable")
            if tables:
                tables.first().focus()

    def action_refresh(self) -> None:
        self.broadcast_change("refresh")

    def broadcast_change(self, what: str = "") -> None:
        """Tell every pane (and the open editor) that data changed."""
        for node in (*self.query(".pane"), *self.screen.query(".reloads")):
            node.post_message(DataChanged(what))
        self.load_status()

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def load_status(self) -> None:
        status = self.services.status()
        if not get_current_worker().is_cancelled:
            self.post_message(StatusLoaded(status))

    @on(StatusLoaded)
    def _status(self, message: StatusLoaded) -> None:
        for line in self.query(StatusLine):  # none while the app shuts down
            line.show(message.status)

    @on(OpenTemplate)
    def _open_template(self, message: OpenTemplate) -> None:
        from badgetui.tui.screens.template import TemplateScreen

        self.push_screen(TemplateScreen(message.template_id))

    @on(ShowLearner)
    def _show_learner(self, message: ShowLearner) -> None:
        from badgetui.tui.screens.progress import ProgressPane

        self.action_show_tab("progress")
        self.query_one(ProgressPane).filter_learner(message.username)

    @on(RunSync)
    def _run_sync(self, message: RunSync) -> None:
        from badgetui.tui.screens.providers import ProvidersPane

        self.action_show_tab("providers")
        self.query_one(ProvidersPane).start_sync(message.account_id)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(one_line(event.worker.error), title="error", severity="error")

    # -- command palette -----------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Sync all accounts", "Fetch templates and groups from every "
                            "provider account", lambda: self.post_message(RunSync(None)))
        yield SystemCommand("Deliver now", "Send queued issue and revoke jobs to the providers",
                            self.deliver)
        yield SystemCommand("Ingest events file", "Process a JSON Lines file of Open edX events",
                            self._ingest_file)
        yield SystemCommand("Import configuration", "Apply a badge configuration JSON file",
                            self._import_config)
        yield SystemCommand("Export configuration", "Write the badge configuration as JSON",
                            self._export_config)
        for tab, label, _ in TABS:
            yield SystemCommand(f"Show {label}", f"Switch to the {label} tab",
                                lambda tab=tab: self.action_show_tab(tab))
        yield from self._rotate_commands()

    def _rotate_commands(self) -> Iterable[SystemCommand]:
        """"Rotate key of …" for each Credly organization with a key, from the rows the
        Providers pane already loaded (no database call on the UI thread)."""
        from badgetui.tui.screens.providers import ProvidersPane

        panes = self.screen_stack[0].query(ProvidersPane) if self.screen_stack else []
        for pane in panes:
            for row in pane.rows.values():
                if pane.rotatable(row.view):
                    yield SystemCommand(
                        f"Rotate key of {row.view.name}",
                        "Rotate this Credly organization's API key; the new key is checked "
                        "before it is stored", partial(pane.rotate_key, row.view.id))

    def _ingest_file(self) -> None:
        from badgetui.tui.screens.events import IngestScreen

        self.push_screen(IngestScreen())

    def _import_config(self) -> None:
        from badgetui.tui.screens.config_files import ImportConfigScreen

        self.push_screen(ImportConfigScreen())

    def _export_config(self) -> None:
        from badgetui.tui.screens.config_files import ExportConfigScreen

        self.push_screen(ExportConfigScreen())


def make_app(settings: Settings, *, services: Services | None = None, **open_args: Any) -> BadgeApp:
    """Build the console from settings; the CLI, the demo and the tests all come through here."""
    return BadgeApp(services or Services.open(settings, **open_args), settings)
