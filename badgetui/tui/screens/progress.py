"""Progress: learners × templates, paged in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import Input

from badgetui.services.queries import list_progress
from badgetui.tui.widgets.paged_table import PagedTablePane, when


def bar(done: int, total: int, width: int = 10) -> str:
    filled = round(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


class ProgressPane(PagedTablePane):
    COLUMNS = ("Learner", "Template", "Progress", "Groups", "Badge", "Fulfilled", "Updated")
    PLACEHOLDER = "learner (exact username)"

    def fetch(self, text: str, limit: int, offset: int) -> list[tuple[str, Sequence[Any]]]:
        rows = list_progress(learner=text or None, limit=limit, offset=offset)
        return [
            (str(r.id), (r.username, r.template, bar(r.fulfilled_groups, r.total_groups),
                         f"{r.fulfilled_groups}/{r.total_groups}",
                         "held" if r.holds_badge else "", ", ".join(r.fulfilled),
                         when(r.updated_at)))
            for r in rows
        ]

    def filter_learner(self, username: str) -> None:
        self.query_one("#filter", Input).value = username
