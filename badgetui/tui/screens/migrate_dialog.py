"""Migrate from Open edX Credentials from the console: plan (a dry run) first, then apply."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Static

from badgetui.services.migrate import MigrationOptions
from badgetui.services.migrate.report import report_lines
from badgetui.tui.errors import one_line


class MigrateScreen(ModalScreen[bool]):
    """Dismissed with True when a migration was applied (the panes reload)."""

    BINDINGS = [Binding("escape", "close", "Close", id="migrate.close")]

    class Done(Message):
        def __init__(self, lines: list[str], *, applied: bool, planned: tuple[Any, ...] | None,
                     error: str = "") -> None:
            super().__init__()
            self.lines = lines
            self.applied = applied
            self.planned = planned
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.running = False
        self.applied = False
        #: The source and choices of the last plan: Migrate applies exactly that.
        self.planned: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="migrate-dialog"):
            yield Static("Migrate from Open edX Credentials", classes="title")
            yield Static("The Credentials database is only read. Plan shows what would be "
                         "imported and what Credentials' defects left behind; Migrate writes "
                         "it in one transaction (running it again changes nothing).",
                         classes="hint")
            yield Input(placeholder="mysql://user:pass@host:3306/credentials or sqlite:///path",
                        id="source", password=False)
            with Horizontal(classes="choices"):
                yield Checkbox("revoke early awards", id="revoke-early")
                yield Checkbox("rule-less templates inactive", id="rule-less-inactive")
            with VerticalScroll(id="migrate-scroll"):
                yield Static("", id="migrate-result", classes="message")
            with Horizontal(classes="buttons"):
                yield Button("Plan", id="plan", variant="primary")
                yield Button("Migrate", id="apply", variant="warning", disabled=True)
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#source", Input).focus()

    def _choices(self) -> tuple[str, bool, bool]:
        return (self.query_one("#source", Input).value.strip(),
                self.query_one("#revoke-early", Checkbox).value,
                self.query_one("#rule-less-inactive", Checkbox).value)

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self.query_one("#apply", Button).disabled = self.planned != self._choices()

    @on(Input.Submitted, "#source")
    @on(Button.Pressed, "#plan")
    def _plan(self) -> None:
        self._start(dry_run=True)

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self._start(dry_run=False)

    def _start(self, *, dry_run: bool) -> None:
        choices = self._choices()
        if self.running or not choices[0]:
            return
        self.running = True
        for button in self.query(Button):
            button.disabled = button.id != "close"
        result = self.query_one("#migrate-result", Static)
        result.set_class(False, "-error")
        result.update(Text("reading the Credentials database …" if dry_run else
                           "migrating …"))
        self.run_migration(choices, dry_run)

    @work(thread=True, exclusive=True, group="migrate", exit_on_error=False)
    def run_migration(self, choices: tuple[str, bool, bool], dry_run: bool) -> None:
        url, revoke_early, inactive = choices
        options = MigrationOptions(keep_early_awards=not revoke_early,
                                   rule_less="inactive" if inactive else "match-any")
        services = self.app.services  # type: ignore[attr-defined]
        try:
            report = services.migrate.migrate_credentials(url, options, dry_run=dry_run)
        except Exception as exc:  # one line in the dialog, whatever went wrong
            self.post_message(self.Done([], applied=False, planned=None, error=one_line(exc)))
            return
        data = report.as_dict()
        self.post_message(self.Done(report_lines(data), applied=not dry_run and data["changed"],
                                    planned=choices if dry_run else None))

    @on(Done)
    def _done(self, message: Done) -> None:
        self.running = False
        result = self.query_one("#migrate-result", Static)
        self.query_one("#plan", Button).disabled = False
        if message.error:
            result.set_class(True, "-error")
            result.update(Text(message.error))
            self.planned = None
        else:
            result.update(Text("\n".join(message.lines)))
            self.planned = message.planned
            if message.applied:
                self.applied = True
                self.app.broadcast_change("migrate")  # type: ignore[attr-defined]
        self.query_one("#apply", Button).disabled = self.planned != self._choices()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(self.applied)
