"""Badges: awarded and revoked, with the provider side; why, and retry of a failed delivery."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from badgetui.services.queries import list_badges, why, why_lines
from badgetui.tui.widgets.paged_table import PagedTablePane, when


class WhyLoaded(Message):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data


class RetryDone(Message):
    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count


class WhyScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="why.close")]

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Static("Why this badge", classes="title")
            yield Static("\n".join(why_lines(self.data)), id="why", markup=False)

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class BadgesPane(PagedTablePane):
    COLUMNS = ("Learner", "Template", "Status", "Provider state", "External id", "Awarded",
               "Last error")
    PLACEHOLDER = "learner (exact username)"
    BINDINGS = [
        *PagedTablePane.BINDINGS,
        Binding("w", "why", "Why", id="badges.why"),
        Binding("r", "retry", "Retry delivery", id="badges.retry"),
    ]

    def fetch(self, text: str, limit: int, offset: int) -> list[tuple[str, Sequence[Any]]]:
        rows = list_badges(learner=text or None, limit=limit, offset=offset)
        return [
            (str(b.id), (b.username, b.template, b.status, b.provider_state, b.external_id or "",
                         when(b.awarded_at), b.last_error))
            for b in rows
        ]

    def _selected(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key else None

    def action_why(self) -> None:
        badge_id = self._selected()
        if badge_id is not None:
            self.load_why(badge_id)

    @work(thread=True, exclusive=True, group="why", exit_on_error=False)
    def load_why(self, badge_id: int) -> None:
        self.post_message(WhyLoaded(json.loads(json.dumps(why(badge_id)))))

    @on(WhyLoaded)
    def _show_why(self, message: WhyLoaded) -> None:
        self.app.push_screen(WhyScreen(message.data))

    def action_retry(self) -> None:
        badge_id = self._selected()
        if badge_id is not None:
            self.retry(badge_id)

    @work(thread=True, exclusive=True, group="retry", exit_on_error=False)
    def retry(self, badge_id: int) -> None:
        count = self.badge_app.services.delivery.retry_failed(badge_id)
        self.post_message(RetryDone(count))

    @on(RetryDone)
    def _retried(self, message: RetryDone) -> None:
        if message.count:
            self.notify(f"delivery requeued ({message.count} job)")
            self.badge_app.broadcast_change("badges")
        else:
            self.notify("nothing to retry: this badge has no failed delivery",
                        severity="warning")
