"""Import and export of the badge configuration (config as code) from the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from badgetui.services.common import ServiceError
from badgetui.services.config_io import ConfigImportError


class PlanReady(Message):
    def __init__(self, lines: list[str], error: bool, applied: bool) -> None:
        super().__init__()
        self.lines = lines
        self.error = error
        self.applied = applied


class ImportConfigScreen(ModalScreen[bool]):
    """Pick a file, see the plan (a dry run), then apply it: all or nothing."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Close", id="close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Import badge configuration", classes="title")
            yield Input(placeholder="path to a configuration JSON file", id="path")
            yield Static("", id="plan")
            with Horizontal(classes="buttons"):
                yield Button("Show plan", id="plan-button", variant="primary")
                yield Button("Apply", id="apply", variant="success", disabled=True)
                yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(False)

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#plan-button")
    def _plan(self) -> None:
        self.run_import(self.query_one("#path", Input).value.strip(), dry_run=True)

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self.run_import(self.query_one("#path", Input).value.strip(), dry_run=False)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def run_import(self, path: str, dry_run: bool) -> None:
        services = self.app.services  # type: ignore[attr-defined]
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
            plan = services.config.import_text(text, dry_run=dry_run)
        except ConfigImportError as exc:
            self.post_message(PlanReady(["refused, nothing changed:", *exc.problems], True,
                                        False))
            return
        except (OSError, ServiceError) as exc:
            self.post_message(PlanReady([f"cannot import: {exc}"], True, False))
            return
        lines = plan.changes or ["no changes"]
        self.post_message(PlanReady([*lines, *plan.warnings], False, plan.applied))

    @on(PlanReady)
    def _show(self, message: PlanReady) -> None:
        plan = self.query_one("#plan", Static)
        plan.update("\n".join(message.lines))
        plan.set_class(message.error, "error")
        self.query_one("#apply", Button).disabled = message.error or message.applied
        if message.applied:
            self.notify("configuration applied")
            self.app.broadcast_change("config")  # type: ignore[attr-defined]


class ExportConfigScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "dismiss(False)", "Close", id="close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Export badge configuration", classes="title")
            yield Input(value="badges.json", id="path")
            with Horizontal(classes="buttons"):
                yield Button("Export", id="export", variant="primary")
                yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(False)

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#export")
    def _export(self) -> None:
        self.write(self.query_one("#path", Input).value.strip())

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def write(self, path: str) -> None:
        from badgetui.services.config_io import export_config

        target = Path(path).expanduser()
        target.write_text(export_config(), encoding="utf-8")
        self.app.call_from_thread(self._written, str(target))

    def _written(self, path: Any) -> None:
        self.notify(f"configuration written to {path}")
        self.dismiss(True)
