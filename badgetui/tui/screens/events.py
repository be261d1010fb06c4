"""Events: the intake log with outcomes, reasons and effects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from badgetui.services.queries import list_intake
from badgetui.tui.widgets.paged_table import PagedTablePane, when


class EventsPane(PagedTablePane):
    COLUMNS = ("Received", "Outcome", "Event", "Learner", "Line", "Reason / effects")
    PLACEHOLDER = "learner (exact username)"

    def fetch(self, text: str, limit: int, offset: int) -> list[tuple[str, Sequence[Any]]]:
        rows = list_intake(learner=text or None, limit=limit, offset=offset, newest_first=True)
        return [
            (str(r.id), (when(r.received_at), r.outcome, r.event_id or "",
                         r.username or "", "" if r.line is None else str(r.line),
                         r.reason or r.effects))
            for r in rows
        ]
