"""Badges: awarded and revoked, with the provider side; filters, why, retry, revoke, re-send."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static

from badgetui.domain.provider_states import PROVIDER_STATES
from badgetui.services.badge_actions import ActionRefused
from badgetui.services.queries import count_badges, get_badge, list_badges, why, why_lines
from badgetui.tui.widgets.paged_table import Filters, PagedTablePane, Row, when
from badgetui.tui.widgets.template_select import TemplateSelect

STATUS_CHOICES = [("awarded", "awarded"), ("revoked", "revoked")]


def _query_args(filters: Filters) -> dict[str, Any]:
    return {"learner_prefix": filters.get("text"), "template": filters.get("template"),
            "status": filters.get("badge_status"), "provider_state": filters.get("provider_state"),
            "failed_only": bool(filters.get("failed_only"))}


class WhyLoaded(Message):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data


class ActionDone(Message):
    """A badge action finished: `text` says what happened; `ok` False when it was refused."""

    def __init__(self, text: str, ok: bool = True) -> None:
        super().__init__()
        self.text = text
        self.ok = ok


class RevokeAsked(Message):
    def __init__(self, badge: dict[str, Any]) -> None:
        super().__init__()
        self.badge = badge


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


class RevokeScreen(ModalScreen[str | None]):
    """Confirm a revoke and give its reason (the provider shows it to the learner)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="revoke.cancel")]

    def __init__(self, badge: dict[str, Any]) -> None:
        super().__init__()
        self.badge = badge

    def compose(self) -> ComposeResult:
        b = self.badge
        with Vertical(classes="dialog", id="revoke-dialog"):
            yield Static(Text(f"Revoke {b['template']} from {b['username']}?"), classes="title")
            yield Static(Text(
                f"Badge {b['id']}, {b['provider']} {b['external_id'] or '(not issued yet)'}. "
                "The provider revokes it (Accredible: expires it), a badge.revoked event is "
                "written, and the learner's progress on this template starts again."),
                classes="message")
            yield Input(placeholder="reason (required)", id="reason")
            with Horizontal(classes="buttons"):
                yield Button("Revoke", id="revoke", variant="error", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Changed, "#reason")
    def _reason(self, event: Input.Changed) -> None:
        self.query_one("#revoke", Button).disabled = not event.value.strip()

    @on(Input.Submitted, "#reason")
    def _submit(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "revoke":
            self.dismiss(self.query_one("#reason", Input).value.strip())
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class BadgesPane(PagedTablePane):
    # The long provider id last: what an operator scans for (state, error) stays on screen.
    COLUMNS = ("Learner", "Template", "Status", "Provider state", "Awarded", "Revoked",
               "Last error / reason", "External id")
    BINDINGS = [
        *PagedTablePane.BINDINGS,
        Binding("w", "why", "Why", id="badges.why"),
        Binding("r", "retry", "Retry", id="badges.retry", tooltip="Retry a failed delivery"),
        Binding("x", "revoke", "Revoke", id="badges.revoke"),
        Binding("s", "resend", "Re-send", id="badges.resend",
                tooltip="Make sure the provider holds this badge"),
    ]

    def compose_filters(self) -> Iterable[Any]:
        yield Select(STATUS_CHOICES, prompt="status", id="badge-status")
        yield Select([(s, s) for s in PROVIDER_STATES], prompt="provider state",
                     id="provider-state")
        yield TemplateSelect(id="template")
        yield Checkbox("failed only", id="failed-only")

    def fetch(self, filters: Filters, limit: int, offset: int) -> list[Row]:
        rows = list_badges(**_query_args(filters), limit=limit, offset=offset, newest_first=True)
        return [
            (str(b.id), (b.username, b.template, b.status, b.provider_state,
                         when(b.awarded_at), when(b.revoked_at),
                         Text(b.last_error or b.revoke_reason), b.external_id or ""))
            for b in rows
        ]

    def count(self, filters: Filters) -> int | None:
        return count_badges(**_query_args(filters))

    def _selected(self) -> int | None:
        key = self.selected_key()
        return int(key) if key else None

    # -- why -----------------------------------------------------------------------------
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

    # -- retry and re-send ---------------------------------------------------------------
    def action_retry(self) -> None:
        badge_id = self._selected()
        if badge_id is not None:
            self.retry(badge_id)

    @work(thread=True, exclusive=True, group="badge-action", exit_on_error=False)
    def retry(self, badge_id: int) -> None:
        count = self.badge_app.services.delivery.retry_failed(badge_id)
        if count:
            self.post_message(ActionDone(f"delivery requeued ({count} job)"))
        else:
            self.post_message(ActionDone(
                "nothing to retry: this badge has no failed delivery", ok=False))

    def action_resend(self) -> None:
        badge_id = self._selected()
        if badge_id is not None:
            self.resend(badge_id)

    @work(thread=True, exclusive=True, group="badge-action", exit_on_error=False)
    def resend(self, badge_id: int) -> None:
        try:
            text = self.badge_app.services.badges.resend(badge_id)
        except ActionRefused as exc:
            self.post_message(ActionDone(str(exc), ok=False))
        else:
            self.post_message(ActionDone(f"badge {badge_id}: {text}"))

    # -- revoke --------------------------------------------------------------------------
    def action_revoke(self) -> None:
        badge_id = self._selected()
        if badge_id is not None:
            self.ask_revoke(badge_id)

    @work(thread=True, exclusive=True, group="badge-action", exit_on_error=False)
    def ask_revoke(self, badge_id: int) -> None:
        badge = get_badge(badge_id).as_dict()
        if badge["status"] != "awarded":
            self.post_message(ActionDone(f"badge {badge_id} is already {badge['status']}",
                                         ok=False))
        else:
            self.post_message(RevokeAsked(badge))

    @on(RevokeAsked)
    def _confirm_revoke(self, message: RevokeAsked) -> None:
        badge_id = message.badge["id"]

        def answered(reason: str | None) -> None:
            if reason:
                self.revoke(badge_id, reason)

        self.app.push_screen(RevokeScreen(message.badge), answered)

    @work(thread=True, exclusive=True, group="badge-action", exit_on_error=False)
    def revoke(self, badge_id: int, reason: str) -> None:
        try:
            text = self.badge_app.services.badges.revoke(badge_id, reason)
        except ActionRefused as exc:
            self.post_message(ActionDone(str(exc), ok=False))
        else:
            self.post_message(ActionDone(f"badge {badge_id} revoked: {text}"))

    @on(ActionDone)
    def _done(self, message: ActionDone) -> None:
        if not message.ok:
            self.notify(message.text, severity="warning")
            return
        self.notify(message.text)
        self.badge_app.broadcast_change("badges")
        self.badge_app.deliver()
