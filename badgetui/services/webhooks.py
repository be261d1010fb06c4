"""Credly webhook receiver (`badgetui webhooks serve`), on the path Open edX uses.

Credly signs nothing, so the body is only a pointer: each event is fetched back from Credly with
that organization's own key and only what the fetch returns is acted on. A forged id fails the
fetch and changes nothing. Credly expects exactly 200 for success. The POSTed type is trusted for
one thing only: skipping, without a fetch, the types badgetui does not handle.

Badge events set a badge's provider state to the one Credly holds *now* (read back with
`GET badges/{id}` after the event is verified), not the one the event recorded: deliveries
come in any order and are retried for days, so an older event re-applies the newest state
instead of moving the badge back. The operator decides what a revocation at Credly means
here (semantics.md): status and progress never change, last_error says what happened.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import AuthError, PermanentError, ProviderError
from badgetui.services.accounts import Connections
from badgetui.services.common import Clock, bump_config_generation, current_database, to_db
from badgetui.services.templates import audit
from badgetui.store.models import Badge, ProviderAccount, Template

WEBHOOK_PATH = "/badges/credly/webhook/"
MAX_BODY = 64 * 1024
#: Longest `id`, `organization_id` or `event_type` accepted (Credly's are UUIDs and short names).
MAX_FIELD = 255
TEMPLATE_EVENTS = ("badge_template.created", "badge_template.changed", "badge_template.deleted")
#: Credly's docs spell the state change `badge.state.changed`; `badge.state_changed` is accepted
#: too (seen in issue text, in no Credly source) since a missed event is worse than an alias.
STATE_EVENTS = ("badge.state.changed", "badge.state_changed")
BADGE_EVENTS = ("badge.created", *STATE_EVENTS, "badge.deleted")
HANDLED_EVENTS = TEMPLATE_EVENTS + BADGE_EVENTS
#: Issued badge states Credly documents (`expired` is unconfirmed); anything else is logged.
BADGE_STATES = ("pending", "accepted", "rejected", "revoked", "replaced", "expired")

log = logging.getLogger("badgetui.webhooks")


@dataclass(frozen=True, slots=True)
class BadgeChange:
    """What a verified badge event means for the local badge: Credly's current state."""

    event_id: str
    event_type: str
    external_id: str
    #: Credly's state now, or "deleted" once the badge is gone there.
    state: str
    #: The revocation reason, when the event's own snapshot shows the current state.
    reason: str | None = None
    replacement_id: str | None = None


@dataclass(slots=True)
class Verdict:
    status: int
    detail: str

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status)


class WebhookService:
    def __init__(self, clock: Clock, connections: Connections) -> None:
        self.clock = clock
        self.connections = connections

    async def handle(self, body: bytes) -> Verdict:
        if len(body) > MAX_BODY:
            return Verdict(413, f"body over {MAX_BODY} bytes")
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return Verdict(400, "body is not JSON")
        except RecursionError:
            return Verdict(400, "body is not JSON (nested too deeply)")
        if not isinstance(doc, dict):
            return Verdict(400, "body is not a JSON object")
        missing = [k for k in ("id", "organization_id", "event_type")
                   if not isinstance(doc.get(k), str) or not doc.get(k)]
        if missing:
            return Verdict(400, f"missing {', '.join(missing)}")
        bad = [k for k in ("id", "organization_id", "event_type") if not _plain(doc[k])]
        if bad:
            return Verdict(400, f"{', '.join(bad)} must be printable text of at most "
                                f"{MAX_FIELD} characters")
        if doc["event_type"] not in HANDLED_EVENTS:
            log.info("webhook event %s of type %s ignored", doc["id"], doc["event_type"])
            return Verdict(200, "ignored")
        account = await run_in_threadpool(
            ProviderAccount.get_or_none,
            (ProviderAccount.provider == "credly")
            & (ProviderAccount.identifier == doc["organization_id"]),
        )
        if account is None:
            return Verdict(404, "unknown organization")
        client = self.connections.for_account(account)
        if not isinstance(client, CredlyClient):  # a Credly account always gives one
            raise TypeError(f"account {account.id} has no Credly client")
        change: BadgeChange | Verdict | None = None
        try:
            async with client:
                try:
                    event = await client.event(doc["id"])
                except PermanentError as exc:
                    log.warning("webhook event %s not verified: %s", doc["id"], exc.message)
                    return Verdict(404, "event not found at Credly")
                if str(event.get("organization_id", account.identifier)) != account.identifier:
                    return Verdict(404, "event belongs to another organization")
                event_type = str(event.get("event_type") or "")
                if event_type in BADGE_EVENTS:
                    change = await self._badge_change(client, doc["id"], event_type, event)
        except AuthError as exc:
            log.error("webhook event %s: Credly refused our key: %s", doc["id"], exc.message)
            return Verdict(503, "cannot verify the event now")
        except ProviderError as exc:
            log.warning("webhook event %s: Credly unreachable: %s", doc["id"], exc.message)
            return Verdict(503, "cannot verify the event now")
        if isinstance(change, Verdict):
            return change
        if change is not None:
            return Verdict(200, await run_in_threadpool(self.apply_badge, account.id, change))
        if event_type not in TEMPLATE_EVENTS:
            log.info("webhook event %s of type %s ignored", doc["id"], event_type)
            return Verdict(200, "ignored")
        template = event.get("badge_template")
        if not isinstance(template, dict) or not template.get("id"):
            return Verdict(200, "event has no badge template")
        outcome = await run_in_threadpool(self.apply, account.id, event_type, template)
        return Verdict(200, outcome)

    async def _badge_change(self, client: CredlyClient, event_id: str, event_type: str,
                            event: dict[str, Any]) -> BadgeChange | Verdict:
        """The verified event's badge with the state Credly holds now (see the module doc).

        `badge.deleted` is final, so it needs no second read; for the others a 404 on the
        badge means it has been deleted since. Other read failures propagate (a 503: retry)."""
        snapshot = event.get("badge")
        if not isinstance(snapshot, dict) or not snapshot.get("id"):
            return Verdict(200, "event has no badge")
        external_id = str(snapshot["id"])
        if event_type == "badge.deleted":
            return BadgeChange(event_id, event_type, external_id, "deleted")
        try:
            state = (await client.badge(external_id)).state
        except PermanentError as exc:
            if exc.status != 404:
                raise ProviderError(exc.message, status=exc.status) from exc
            return BadgeChange(event_id, event_type, external_id, "deleted")
        if state not in BADGE_STATES:
            log.warning("webhook event %s: badge %s has unknown state %r", event_id,
                        external_id, state)
            return Verdict(200, "unknown badge state")
        own = str(snapshot.get("state") or "") == state
        reason = snapshot.get("revocation_reason") if own else None
        replacement = snapshot.get("replacement_badge_id") if own else None
        return BadgeChange(event_id, event_type, external_id, state,
                           str(reason) if reason else None,
                           str(replacement) if replacement else None)

    def apply_badge(self, account_id: int, change: BadgeChange) -> str:
        """Record Credly's state on the local badge(s) of this account with that Credly id.

        A badge badgetui never issued is not created (Credly's dashboard can issue too)."""
        rows = list(Badge.select().join(Template).where(
            (Badge.external_id == change.external_id) & (Template.account == account_id)))
        if not rows:
            log.info("webhook event %s: unknown badge %s, nothing changed", change.event_id,
                     change.external_id)
            return "unknown badge"
        now = to_db(self.clock())
        changed = False
        with current_database().atomic():
            for row in rows:
                note = _note(row, change)
                if row.provider_state == change.state and note in (None, row.last_error):
                    continue
                values: dict[str, Any] = {"provider_state": change.state, "updated_at": now}
                if note is not None:
                    values["last_error"] = note
                Badge.update(**values).where(Badge.id == row.id).execute()
                audit(self.clock, "webhook.badge_state", f"badge {row.id}",
                      {"from": row.provider_state, "to": change.state, "status": row.status,
                       "event": change.event_id, "event_type": change.event_type,
                       "credly_badge": change.external_id}, actor="credly")
                changed = True
        return change.state if changed else "unchanged"

    def apply(self, account_id: int, event_type: str, template: dict[str, Any]) -> str:
        """Upsert, deactivate or delete one template as the verified event says."""
        now = to_db(self.clock())
        external_id = str(template["id"])
        row = Template.get_or_none(
            (Template.account == account_id) & (Template.external_id == external_id)
        )
        if event_type == "badge_template.deleted":
            if row is None:
                return "unknown template"
            Template.update(deleted=True, is_active=False, updated_at=now).where(
                Template.id == row.id).execute()
            bump_config_generation()
            audit(self.clock, "webhook.deleted", f"template {row.id}", actor="credly")
            return "deleted"
        values = {
            "name": str(template.get("name") or ""),
            "description": str(template.get("description") or ""),
            "image_url": str(template.get("image_url") or ""),
            "state": str(template.get("state") or "active"),
        }
        if row is None:
            account = ProviderAccount.get_by_id(account_id)
            Template.create(account=account_id, provider=account.provider,
                            external_id=external_id, created_at=now, updated_at=now, **values)
            audit(self.clock, "webhook.created", external_id, actor="credly")
            return "created"
        deactivate = row.is_active and values["state"] != "active"
        Template.update(**values, stale=False, deleted=False, updated_at=now,
                        is_active=row.is_active and not deactivate).where(
            Template.id == row.id).execute()
        bump_config_generation()
        audit(self.clock, "webhook.changed", f"template {row.id}",
              {"state": values["state"], "deactivated": deactivate}, actor="credly")
        return "deactivated" if deactivate else "updated"


def _plain(value: str) -> bool:
    """Whether a body field can be looked up and sent back to Credly as it is: not too long, no
    control characters, no lone surrogates (which no database or URL can carry)."""
    return len(value) <= MAX_FIELD and value.isprintable()  # surrogates are not printable


def _note(row: Badge, change: BadgeChange) -> str | None:
    """The one-line last_error for a badge Credly took away while it is awarded here, else None
    (leave last_error as it is). A badge revoked here and at Credly needs no note."""
    if change.state == "deleted":
        return f"deleted at Credly: the badge no longer exists there (still {row.status} here)"
    if row.status != "awarded":
        return None
    if change.state == "revoked":
        if change.reason is None and row.provider_state == "revoked":
            return None  # an older event without the reason: keep the note that has it
        return f"revoked at Credly: {change.reason or 'no reason given'}"
    if change.state == "replaced":
        by = f" by badge {change.replacement_id}" if change.replacement_id else ""
        return f"replaced at Credly{by}"
    return None


def webhook_app(service: WebhookService) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
            return Verdict(413, f"body over {MAX_BODY} bytes").response()
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return Verdict(413, f"body over {MAX_BODY} bytes").response()
        verdict = await service.handle(body)
        return verdict.response()

    return Starlette(routes=[
        Route(WEBHOOK_PATH, receive, methods=["POST"]),
        Route(WEBHOOK_PATH.rstrip("/"), receive, methods=["POST"]),
    ])
