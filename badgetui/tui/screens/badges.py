"""Badges: awarded and revoked, with the provider side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from badgetui.services.queries import list_badges
from badgetui.tui.widgets.paged_table import PagedTablePane, when


class BadgesPane(PagedTablePane):
    COLUMNS = ("Learner", "Template", "Status", "Provider state", "External id", "Awarded",
               "Last error")
    PLACEHOLDER = "learner (exact username)"

    def fetch(self, text: str, limit: int, offset: int) -> list[tuple[str, Sequence[Any]]]:
        rows = list_badges(learner=text or None, limit=limit, offset=offset)
        return [
            (str(b.id), (b.username, b.template, b.status, b.provider_state, b.external_id or "",
                         when(b.awarded_at), b.last_error))
            for b in rows
        ]
