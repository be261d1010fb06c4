"""The rule tester: evaluate a pasted or picked event against every requirement and penalty
of one template, and show where each stops matching."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from badgetui.services.editor import ItemVerdict, TestResult
from badgetui.tui.screens.form_parts import report_worker_error, short_event, text, theme_color

RESULT_COLUMNS = (("item", "Requirement / penalty"), ("result", "Result"), ("rule", "Rule"),
                  ("actual", "Value in the event"))
RECENT = 50


class RecentLoaded(Message):
    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events


class Tested(Message):
    def __init__(self, result: TestResult) -> None:
        super().__init__()
        self.result = result


class RuleTesterScreen(Screen[None]):
    """Paste an event (or pick one from the intake log) and test it against a template."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="tester.close"),
        Binding("ctrl+t,f5", "test", "Test", id="tester.test"),
        Binding("ctrl+l", "focus_recent", "Recent events", id="tester.recent"),
    ]

    def __init__(self, template_id: int, template_name: str = "") -> None:
        super().__init__()
        self.template_id = template_id
        self.template_name = template_name
        self.recent: list[dict[str, Any]] = []
        self.result: TestResult | None = None

    @property
    def services(self) -> Any:
        return self.app.services  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="tester-input"):
            with Vertical(id="tester-paste"):
                yield Label("Event JSON (paste, then ctrl+t or Test)", classes="section")
                yield TextArea("", id="event-json", soft_wrap=True, show_line_numbers=False)
            with Vertical(id="tester-recent"):
                yield Label("Recent events (enter to test)", classes="section")
                yield OptionList(id="recent-events")
        with Horizontal(id="tester-bar"):
            yield Button("Test", id="test", variant="primary", compact=True)
            yield Static("", id="tester-status", classes="message")
        yield DataTable(id="verdicts", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"rule tester: {self.template_name}" if self.template_name else \
            "rule tester"
        table = self.query_one("#verdicts", DataTable)
        for key, label in RESULT_COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#event-json", TextArea).focus()
        self._status("Paste an event or pick a recent one.")
        self.load_recent()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)

    # -- recent events -------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="tester-recent", exit_on_error=False,
          name="recent events")
    def load_recent(self) -> None:
        events = self.services.editor.recent_events(RECENT)
        if not get_current_worker().is_cancelled:
            self.post_message(RecentLoaded(events))

    @on(RecentLoaded)
    def _recent(self, message: RecentLoaded) -> None:
        self.recent = message.events
        options = self.query_one("#recent-events", OptionList)
        options.clear_options()
        if not message.events:
            options.add_option(Option(Text("no events in the intake log yet"), disabled=True))
            return
        options.add_options(
            Option(Text(f"{e['username'] or '?'}  {e['id']}\n"
                        f"  {short_event(e['event_type'] or '')}, {e['outcome']}"),
                   id=str(index))
            for index, e in enumerate(message.events))
        options.highlighted = 0

    @on(OptionList.OptionSelected, "#recent-events")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is None:
            return
        picked = self.recent[int(event.option.id)]
        self.query_one("#event-json", TextArea).text = json.dumps(picked["event"], indent=2)
        self.action_test()

    def action_focus_recent(self) -> None:
        self.query_one("#recent-events", OptionList).focus()

    # -- testing -------------------------------------------------------------------------
    @on(Button.Pressed, "#test")
    def action_test(self) -> None:
        source = self.query_one("#event-json", TextArea).text.strip()
        if not source:
            self._status("Nothing to test: paste an event JSON or pick a recent event.",
                         "warning")
            return
        self._status("testing...")
        self.run_test_event(source)

    @work(thread=True, exclusive=True, group="tester", exit_on_error=False, name="rule tester")
    def run_test_event(self, source: str) -> None:
        result = self.services.editor.test_event(self.template_id, source)
        if not get_current_worker().is_cancelled:
            self.post_message(Tested(result))

    @on(Tested)
    def _tested(self, message: Tested) -> None:
        self.result = result = message.result
        table = self.query_one("#verdicts", DataTable)
        table.clear()
        if result.status == "rejected":
            self._status(f"The event is not valid: {result.reason}", "error")
            return
        for index, verdict in enumerate(result.verdicts):
            self._add_verdict(table, index, verdict)
        matched = sum(v.matched for v in result.verdicts)
        line = f"{matched} of {len(result.verdicts)} match."
        if result.status != "ok":
            line += f"  Intake would mark this event {result.status}: {result.reason}"
        self._status(line, "warning" if result.status != "ok" else "")

    def _add_verdict(self, table: DataTable[Any], index: int, verdict: ItemVerdict) -> None:
        good, bad = theme_color(self, "success"), theme_color(self, "error")
        muted = theme_color(self, "text-muted")
        label = text(verdict.label)
        label.stylize("bold")
        if verdict.matched:
            result = Text("MATCH", style=f"bold {good}")
        else:
            result = Text("no match", style=f"bold {bad}")
        if not verdict.type_matches:
            table.add_row(label, result, text(f"needs {short_event(verdict.event_type)}"),
                          Text("other event type", style=muted), key=f"{index}")
            return
        if not verdict.rules:
            table.add_row(label, result, Text("no rules: every event of its type", style=muted),
                          Text(""), key=f"{index}")
            return
        first = verdict.first_failing
        summary = "all rules match" if first is None else f"stops at rule {first + 1}"
        table.add_row(label, result, text(summary), Text(""), key=f"{index}")
        for number, rule in enumerate(verdict.rules):
            actual = Text("missing" if rule.actual is None else rule.actual, no_wrap=True,
                          overflow="ellipsis")
            if number == first:
                style = f"bold {bad} reverse"
                cells = (Text(f"  > rule {number + 1}", style=style),
                         Text("FIRST FAILING", style=style), Text(rule.rule, style=style),
                         Text(actual.plain, style=style))
            else:
                mark = Text("ok", style=good) if rule.matched else Text("fails", style=bad)
                cells = (Text(f"    rule {number + 1}", style=muted), mark, text(rule.rule),
                         actual)
            table.add_row(*cells, key=f"{index}.{number}")

    def _status(self, line: str, level: str = "") -> None:
        status = self.query_one("#tester-status", Static)
        status.update(Text(line))
        status.set_class(level == "warning", "-warning")
        status.set_class(level == "error", "-error")

    def action_close(self) -> None:
        self.dismiss()
