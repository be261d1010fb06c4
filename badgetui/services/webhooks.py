"""Credly webhook receiver (`badgetui webhooks serve`), on the path Open edX uses.

Credly signs nothing, so the body is only a pointer: each event is fetched back from Credly with
that organization's own key and only what the fetch returns is acted on. A forged id fails the
fetch and changes nothing. Credly expects exactly 200 for success.
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

from badgetui.providers.errors import AuthError, PermanentError, ProviderError
from badgetui.services.accounts import Connections
from badgetui.services.common import Clock, bump_config_generation, to_db
from badgetui.services.templates import audit
from badgetui.store.models import ProviderAccount, Template

WEBHOOK_PATH = "/badges/credly/webhook/"
MAX_BODY = 64 * 1024
TEMPLATE_EVENTS = ("badge_template.created", "badge_template.changed", "badge_template.deleted")

log = logging.getLogger("badgetui.webhooks")


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
        if not isinstance(doc, dict):
            return Verdict(400, "body is not a JSON object")
        missing = [k for k in ("id", "organization_id", "event_type")
                   if not isinstance(doc.get(k), str) or not doc.get(k)]
        if missing:
            return Verdict(400, f"missing {', '.join(missing)}")
        account = await run_in_threadpool(
            ProviderAccount.get_or_none,
            (ProviderAccount.provider == "credly")
            & (ProviderAccount.identifier == doc["organization_id"]),
        )
        if account is None:
            return Verdict(404, "unknown organization")
        try:
            async with self.connections.credly(account.identifier, account.api_key) as client:
                event = await client.event(doc["id"])
        except PermanentError as exc:
            log.warning("webhook event %s not verified: %s", doc["id"], exc.message)
            return Verdict(404, "event not found at Credly")
        except AuthError as exc:
            log.error("webhook event %s: Credly refused our key: %s", doc["id"], exc.message)
            return Verdict(503, "cannot verify the event now")
        except ProviderError as exc:
            log.warning("webhook event %s: Credly unreachable: %s", doc["id"], exc.message)
            return Verdict(503, "cannot verify the event now")
        if str(event.get("organization_id", account.identifier)) != account.identifier:
            return Verdict(404, "event belongs to another organization")
        event_type = str(event.get("event_type") or "")
        if event_type not in TEMPLATE_EVENTS:
            log.info("webhook event %s of type %s ignored", doc["id"], event_type)
            return Verdict(200, "ignored")
        template = event.get("badge_template")
        if not isinstance(template, dict) or not template.get("id"):
            return Verdict(200, "event has no badge template")
        outcome = await run_in_threadpool(self.apply, account.id, event_type, template)
        return Verdict(200, outcome)

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


def webhook_app(service: WebhookService) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
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
