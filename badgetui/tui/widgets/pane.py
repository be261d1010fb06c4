"""Base of every tab: loads in thread workers, reports failures as notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.containers import Vertical
from textual.worker import Worker, WorkerState

from badgetui.tui.errors import one_line

if TYPE_CHECKING:
    from badgetui.tui.app import BadgeApp


class Pane(Vertical):
    """A tab's content. Subclasses implement `reload()` (start a worker) and handle its message."""

    @property
    def badge_app(self) -> BadgeApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:  # pragma: no cover - every pane overrides it
        """Start loading what the pane shows."""

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.notify(one_line(event.worker.error), title=event.worker.name or "error",
                        severity="error")
