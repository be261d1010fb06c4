"""Events: the intake log, live, with outcomes, reasons and effects; ingest a file from here."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, ProgressBar, Select, Static
from textual.worker import get_current_worker

from badgetui.domain.events import OUTCOMES
from badgetui.services.intake import IngestReport
from badgetui.services.lines import read_lines
from badgetui.services.queries import count_intake, intake_detail, list_intake
from badgetui.tui.errors import one_line
from badgetui.tui.screens.form_parts import short_event
from badgetui.tui.widgets.paged_table import Filters, PagedTablePane, Row, when

OUTCOME_STYLES = {"processed": "green", "ignored": "", "dropped": "yellow",
                  "duplicate": "dim", "rejected": "bold red"}


def _query_args(filters: Filters) -> dict[str, Any]:
    return {"learner_prefix": filters.get("text"), "outcome": filters.get("outcome")}


def _cut(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def count_lines(path: Path) -> int:
    """Non-blank lines: the events a file holds, for the progress bar's total."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


class EventDetailScreen(ModalScreen[None]):
    """One intake record: outcome, reason, effects in full, and the event as it came in."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="event.close")]

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        r = self.record
        where = r["source"] + (f", line {r['line']}" if r["line"] is not None else "")
        lines = [
            f"outcome    {r['outcome']}" + (f": {r['reason']}" if r["reason"] else ""),
            f"event      {r['event_id'] or '(no id)'}  {r['event_type'] or ''}",
            f"learner    {r['username'] or ''}",
            f"time       {r['event_time'] or ''}   received {r['received_at']}",
            f"from       {where}",
            "effects    " + (r["effects"] or "none"),
        ]
        payload = r["payload"]
        with contextlib.suppress(ValueError):  # a rejected line is shown as it came
            payload = json.dumps(json.loads(payload), indent=2)
        with VerticalScroll(classes="dialog", id="event-detail"):
            yield Static(Text(f"Event {r['id']}"), classes="title")
            yield Static(Text("\n".join(lines)), id="event-fields")
            yield Static(Text(payload), id="event-payload", classes="message")

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class IngestScreen(ModalScreen[None]):
    """Ingest a JSON Lines file of events with a progress bar; deliver afterwards."""

    BINDINGS = [Binding("escape", "close", "Close", id="ingest.close")]

    class Progressed(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done = done
            self.total = total

    class Finished(Message):
        def __init__(self, report: IngestReport | None, error: str = "") -> None:
            super().__init__()
            self.report = report
            self.error = error

    def __init__(self, path: str = "") -> None:
        super().__init__()
        self.path = path
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="ingest-dialog"):
            yield Static("Ingest events", classes="title")
            yield Input(self.path, placeholder="path to a .jsonl file of Open edX events",
                        id="path")
            yield Checkbox("deliver to the providers afterwards", value=True, id="deliver")
            yield ProgressBar(id="bar", show_eta=False)
            yield Static("", id="ingest-result", classes="message")
            with Horizontal(classes="buttons"):
                yield Button("Ingest", id="start", variant="primary")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        if self.running:
            return
        path = Path(self.query_one("#path", Input).value.strip()).expanduser()
        result = self.query_one("#ingest-result", Static)
        if not path.is_file():
            result.set_class(True, "-error")
            result.update(Text(f"no such file: {path}"))
            return
        result.set_class(False, "-error")
        result.update(Text(f"reading {path.name} …"))
        self.running = True
        self.query_one("#start", Button).disabled = True
        self.ingest(path, self.query_one("#deliver", Checkbox).value)

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False)
    def ingest(self, path: Path, deliver: bool) -> None:
        services = self.app.services  # type: ignore[attr-defined]
        try:
            total = count_lines(path)
            self.post_message(self.Progressed(0, total))

            def progressed(report: IngestReport) -> None:
                self.post_message(self.Progressed(report.total, total))

            with path.open("rb") as handle:  # as `events ingest` reads: bounded, strict UTF-8
                report = services.intake.ingest_lines(read_lines(handle), path.name,
                                                      on_progress=progressed)
        except Exception as exc:  # one line in the dialog, whatever went wrong
            self.post_message(self.Finished(None, one_line(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.Finished(report))
            if deliver:
                self.app.call_from_thread(self.app.deliver)  # type: ignore[attr-defined]

    @on(Progressed)
    def _progressed(self, message: Progressed) -> None:
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.running = False
        self.query_one("#start", Button).disabled = False
        result = self.query_one("#ingest-result", Static)
        if message.report is None:
            result.set_class(True, "-error")
            result.update(Text(message.error))
            return
        counts = message.report.as_dict()
        lines = [", ".join(f"{k} {v}" for k, v in counts.items())]
        lines += [str(p) for p in message.report.problems[:5]]
        if message.report.problems_total > 5:
            lines.append(f"… {message.report.problems_total - 5} more (see the Events tab)")
        result.update(Text("\n".join(lines)))
        self.app.broadcast_change("ingest")  # type: ignore[attr-defined]

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)


class EventsPane(PagedTablePane):
    COLUMNS = ("Received", "Outcome", "Type", "Learner", "Source", "Reason / effects",
               "Event id")
    BINDINGS = [
        *PagedTablePane.BINDINGS,
        Binding("i", "ingest", "Ingest file", id="events.ingest"),
    ]

    def compose_filters(self) -> Iterable[Any]:
        yield Select([(o, o) for o in OUTCOMES], prompt="outcome", id="outcome")

    def fetch(self, filters: Filters, limit: int, offset: int) -> list[Row]:
        rows = list_intake(**_query_args(filters), limit=limit, offset=offset, newest_first=True)
        # Text cells: no markup parsing (reasons may hold "["), and long effects cut to what a
        # row can show, which keeps a page quick to draw.
        return [
            (str(r.id), (
                Text(when(r.received_at)), Text(r.outcome, style=OUTCOME_STYLES.get(r.outcome, "")),
                Text(short_event(r.event_type) if r.event_type else ""), Text(r.username or ""),
                Text(r.source + (f":{r.line}" if r.line is not None else "")),
                Text(_cut(r.reason or r.effects)),
                Text(r.event_id or ""),
            ))
            for r in rows
        ]

    def count(self, filters: Filters) -> int | None:
        return count_intake(**_query_args(filters))

    def action_ingest(self) -> None:
        self.app.push_screen(IngestScreen())

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = self.selected_key()
        if key is not None:
            self.load_detail(int(key))

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load_detail(self, record_id: int) -> None:
        self.post_message(self.DetailLoaded(intake_detail(record_id)))

    class DetailLoaded(Message):
        def __init__(self, record: dict[str, Any]) -> None:
            super().__init__()
            self.record = record

    @on(DetailLoaded)
    def _show_detail(self, message: DetailLoaded) -> None:
        self.app.push_screen(EventDetailScreen(message.record))
