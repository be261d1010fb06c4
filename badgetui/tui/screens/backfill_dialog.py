"""The backfill a freshly activated template is offered: its preview, then a run with a bar."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, ProgressBar, Static

from badgetui.tui.errors import one_line

SHOWN = 8


def preview_lines(report: Any) -> list[str]:
    """What a preview (or a run) did, as the dialog shows it."""
    lines = [f"{report.events:,} recorded events would be replayed" if report.dry_run else
             f"{report.events:,} recorded events replayed"]
    for key, label in (("progressed", "gain progress"), ("awarded", "complete and be awarded"),
                       ("revoked", "be revoked")):
        count = report.counts.get(key, 0)
        names = report.learners.get(key, [])[:SHOWN]
        more = f" … {count - len(names):,} more" if count > len(names) else ""
        verb = "would " if report.dry_run else ""
        lines.append(f"{count:,} {verb}{label}" + (f": {', '.join(names)}{more}" if names
                                                   else ""))
    return lines


class BackfillScreen(ModalScreen[bool]):
    """Offered after an activation whose preview found events to replay."""

    BINDINGS = [Binding("escape", "close", "Not now", id="backfill.close")]

    class Progressed(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done = done
            self.total = total

    class Finished(Message):
        def __init__(self, lines: list[str], error: str = "") -> None:
            super().__init__()
            self.lines = lines
            self.error = error

    def __init__(self, template_id: int, name: str, preview: Any) -> None:
        super().__init__()
        self.template_id = template_id
        self.template_name = name
        self.preview = preview
        self.ran = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="backfill-dialog"):
            yield Static(Text(f"Backfill {self.template_name}?"), classes="title")
            yield Static("Activation affects new events only. A backfill replays the events "
                         "recorded before, as if the template had been active then: "
                         "progress, awards and revocations as processing makes them, "
                         "delivered through the queue.", classes="hint")
            yield Static(Text("\n".join(preview_lines(self.preview))), id="backfill-result",
                         classes="message")
            yield Checkbox("deliver to the providers afterwards", value=True, id="deliver")
            yield ProgressBar(id="backfill-bar", show_eta=False)
            with Horizontal(classes="buttons"):
                yield Button("Backfill", id="run", variant="primary")
                yield Button("Not now", id="close")

    @on(Button.Pressed, "#run")
    def _run(self) -> None:
        self.query_one("#run", Button).disabled = True
        self.backfill(self.query_one("#deliver", Checkbox).value)

    @work(thread=True, exclusive=True, group="backfill", exit_on_error=False)
    def backfill(self, deliver: bool) -> None:
        services = self.app.services  # type: ignore[attr-defined]
        try:
            report = services.backfill.run(
                self.template_id,
                on_progress=lambda done, total: self.post_message(self.Progressed(done, total)))
        except Exception as exc:  # one line in the dialog, whatever went wrong
            self.post_message(self.Finished([], one_line(exc)))
            return
        self.post_message(self.Finished(preview_lines(report)))
        if deliver and (report.awarded or report.revoked):
            self.app.call_from_thread(self.app.deliver)  # type: ignore[attr-defined]

    @on(Progressed)
    def _progressed(self, message: Progressed) -> None:
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        result = self.query_one("#backfill-result", Static)
        if message.error:
            result.set_class(True, "-error")
            result.update(Text(message.error))
            self.query_one("#run", Button).disabled = False
            return
        self.ran = True
        bar = self.query_one(ProgressBar)
        bar.update(total=max(bar.total or 1, 1), progress=bar.total or 1)
        result.update(Text("\n".join(message.lines)))
        self.query_one("#close", Button).label = "Close"
        self.app.broadcast_change("backfill")  # type: ignore[attr-defined]

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(self.ran)
