"""Credly badge webhooks: the provider state of a badge follows what Credly holds.

The emulator POSTs its webhooks straight into the receiver app (an httpx ASGI transport), and
the receiver fetches events and badges back from the same emulator, so every assertion is on
what really went through: the badge row, the audit log, the emulator's request counters.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from badgetui.sandbox import Emulator
from badgetui.services.webhooks import WEBHOOK_PATH, webhook_app
from badgetui.store.models import AuditLog, Badge, Progress
from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config

CREDLY_KEY = "sandbox-credly-key"
TPL = credly_templates(1)[0]["id"]
RECEIVER = "http://receiver"


class Forward(httpx.AsyncBaseTransport):
    """The emulator's webhook transport: hands each POST to the receiver app once it exists."""

    def __init__(self) -> None:
        self.target: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.target is not None, "no receiver yet"
        return await self.target.handle_async_request(request)


@pytest.fixture
def forward() -> Forward:
    return Forward()


@pytest.fixture
def emulator(clock, forward):
    """Overrides conftest's: badge events on, no retries, webhooks into the receiver."""
    seed = sandbox_seed()
    seed["credly"]["organizations"][0]["webhook_url"] = RECEIVER + WEBHOOK_PATH
    return Emulator(seed, clock=clock, rng_seed=1, webhook_transport=forward,
                    options={"webhook_badge_events": True, "webhook_retry_delays": []})


@pytest.fixture
async def svc(psvc, clock, forward, emulator):
    """Services on the emulator with one Credly badge issued to ann (pending at Credly)."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    psvc.delivery.sleep = sleep
    forward.target = httpx.ASGITransport(app=webhook_app(psvc.webhooks))
    account = await psvc.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    await psvc.sync.sync(account.id)
    psvc.config.import_text(config_text(template_config(
        TPL, [requirement("demo", rule("course.course_key", DEMO))])))
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    assert (await psvc.delivery.run()).counts["issued"] == 1
    assert await emulator.wait_webhooks(5)
    badge = Badge.get()
    assert badge.external_id and badge.provider_state == "pending"
    return psvc


async def post(forward: Forward, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(transport=forward, base_url=RECEIVER) as client:
        return await client.post(WEBHOOK_PATH, content=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})


def notice(event: dict, event_type: str | None = None) -> dict:
    return {"id": event["id"], "organization_id": CREDLY_ORG,
            "event_type": event_type or event["event_type"], "occurred_at": event["occurred_at"]}


def fetched(emulator: Emulator, endpoint: str) -> int:
    return emulator.counters().get(endpoint, {}).get("requests", 0)


def badge_audit() -> list[dict]:
    return [json.loads(a.detail) for a in
            AuditLog.select().where(AuditLog.action == "webhook.badge_state").order_by(AuditLog.id)]


def last_delivery(emulator: Emulator) -> dict:
    return emulator.webhook_deliveries()[-1]


@pytest.mark.parametrize("spelling", ["badge.state.changed", "badge.state_changed"])
async def test_accepted_and_rejected_follow_credly(svc, emulator, spelling):
    emulator.set_options({"credly_badge_state_event": spelling})
    ext = Badge.get().external_id
    emulator.set_credly_badge_state(ext, "accepted")
    assert await emulator.wait_webhooks(5)
    delivery = last_delivery(emulator)
    assert delivery["event_type"] == spelling
    assert delivery["delivered"] and delivery["attempts"][-1]["status"] == 200
    badge = Badge.get()
    assert (badge.status, badge.provider_state) == ("awarded", "accepted")
    assert badge_audit()[-1]["from"] == "pending" and badge_audit()[-1]["to"] == "accepted"
    emulator.set_credly_badge_state(ext, "rejected")
    assert await emulator.wait_webhooks(5)
    assert Badge.get().provider_state == "rejected"
    assert [(a["from"], a["to"]) for a in badge_audit()] == [("pending", "accepted"),
                                                              ("accepted", "rejected")]


async def test_revoked_at_credly_is_noted_but_status_and_progress_stay(svc, emulator):
    ext = Badge.get().external_id
    emulator.set_credly_badge_state(ext, "revoked", reason="Issued in error")
    assert await emulator.wait_webhooks(5)
    badge = Badge.get()
    assert (badge.status, badge.provider_state) == ("awarded", "revoked")
    assert badge.last_error == "revoked at Credly: Issued in error"
    progress = Progress.get()
    assert progress.complete and progress.badge_id == badge.id
    assert badge_audit()[-1]["to"] == "revoked" and badge_audit()[-1]["status"] == "awarded"


async def test_deleted_at_credly_keeps_the_status(svc, emulator):
    ext = Badge.get().external_id
    event = emulator.delete_credly_badge(ext)
    assert event["event_type"] == "badge.deleted" and event["badge"]["id"] == ext
    assert await emulator.wait_webhooks(5)
    assert last_delivery(emulator)["delivered"]
    badge = Badge.get()
    assert (badge.status, badge.provider_state) == ("awarded", "deleted")
    assert badge.last_error.startswith("deleted at Credly")
    assert badge_audit()[-1]["event_type"] == "badge.deleted"


async def test_out_of_order_never_moves_a_badge_back(svc, emulator, forward):
    emulator.set_options({"webhook_badge_events": False})  # deliver by hand, newest first
    ext = Badge.get().external_id
    emulator.set_credly_badge_state(ext, "accepted")
    emulator.set_credly_badge_state(ext, "revoked", reason="Policy")
    accepted, revoked = [e for e in emulator.state()["credly"]["events"]
                         if e["event_type"] == "badge.state.changed"]
    events = {e["id"]: e for e in (accepted, revoked)}
    assert (await post(forward, notice(events[revoked["id"]]))).status_code == 200
    late = await post(forward, notice(events[accepted["id"]]))
    assert (late.status_code, late.json()["detail"]) == (200, "unchanged")
    badge = Badge.get()
    assert badge.provider_state == "revoked" and badge.last_error == "revoked at Credly: Policy"
    assert [a["to"] for a in badge_audit()] == ["revoked"]  # the late one changed nothing
    assert fetched(emulator, "credly.badges.get") >= 2  # the current state was read each time


async def test_the_posted_type_is_only_used_to_skip(svc, emulator, forward):
    emulator.set_options({"webhook_badge_events": False})
    ext = Badge.get().external_id
    emulator.set_credly_badge_state(ext, "accepted")
    (event,) = [e for e in emulator.state()["credly"]["events"]
                if e["event_type"] == "badge.state.changed"]
    lying = await post(forward, notice(event, "badge.deleted"))
    assert lying.status_code == 200
    assert Badge.get().provider_state == "accepted"  # what Credly says, not the body
    forged = await post(forward, {"id": "00000000-dead-4bee-8f00-000000000000",
                                  "organization_id": CREDLY_ORG, "event_type": "badge.deleted"})
    assert forged.status_code == 404
    assert Badge.get().provider_state == "accepted"


async def test_ignored_types_are_answered_without_a_fetch(svc, emulator, forward):
    before = fetched(emulator, "credly.events.get")
    for event_type in ("pending_badge_notification.sent",
                       "pending_badge_notification.no_user.sent", "badge.privacy.changed",
                       "something.new"):
        answer = await post(forward, {"id": "00000000-0000-4000-8000-00000000beef",
                                      "organization_id": CREDLY_ORG, "event_type": event_type})
        assert (answer.status_code, answer.json()["detail"]) == (200, "ignored")
    assert fetched(emulator, "credly.events.get") == before


async def test_a_badge_issued_outside_badgetui_is_not_created(svc, emulator, forward):
    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://sandbox",
                                 auth=(CREDLY_KEY, "")) as client:
        issued = await client.post(f"/credly/v1/organizations/{CREDLY_ORG}/badges", json={
            "recipient_email": "zed@example.org", "issued_to_first_name": "Zed",
            "issued_to_last_name": "Z", "badge_template_id": TPL,
            "issued_at": "2026-11-01 12:00:00 +0000"})
    assert issued.status_code == 201
    assert await emulator.wait_webhooks(5)
    emulator.set_credly_badge_state(issued.json()["data"]["id"], "accepted")
    assert await emulator.wait_webhooks(5)
    assert all(d["delivered"] for d in emulator.webhook_deliveries())
    again = await post(forward, emulator.webhook_deliveries()[-1]["payload"])
    assert (again.status_code, again.json()["detail"]) == (200, "unknown badge")
    assert Badge.select().count() == 1 and Badge.get().provider_state == "pending"
    assert badge_audit() == []


async def test_a_badge_gone_at_credly_reads_as_deleted(svc, emulator, forward):
    """A late state change for a badge deleted since: the badge read (404) wins."""
    emulator.set_options({"webhook_badge_events": False})
    ext = Badge.get().external_id
    accepted = emulator.set_credly_badge_state(ext, "accepted")
    assert accepted["state"] == "accepted"
    (event,) = [e for e in emulator.state()["credly"]["events"]
                if e["event_type"] == "badge.state.changed"]
    emulator.delete_credly_badge(ext)
    assert (await post(forward, notice(event))).status_code == 200
    assert Badge.get().provider_state == "deleted"


# -- the emulator's control hooks -----------------------------------------------------------

async def test_emulator_delete_and_dashboard_revoke_hooks(clock):
    emulator = Emulator(sandbox_seed(), clock=clock, rng_seed=1)
    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://sandbox",
                                 auth=(CREDLY_KEY, "")) as client:
        api = f"/credly/v1/organizations/{CREDLY_ORG}"
        ids = []
        for email in ("a@example.org", "b@example.org"):
            made = await client.post(f"{api}/badges", json={
                "recipient_email": email, "issued_to_first_name": "A",
                "issued_to_last_name": "B", "badge_template_id": TPL,
                "issued_at": "2026-11-01 12:00:00 +0000"})
            ids.append(made.json()["data"]["id"])
        no_reason = await client.post(f"/_sandbox/credly/badges/{ids[0]}/state",
                                      json={"state": "revoked"})
        assert no_reason.status_code == 400
        revoked = await client.post(f"/_sandbox/credly/badges/{ids[0]}/state",
                                    json={"state": "revoked", "reason": "Fraud"})
        assert revoked.json()["revocation_reason"] == "Fraud"
        deleted = await client.delete(f"/_sandbox/credly/badges/{ids[1]}")
        assert deleted.status_code == 200 and deleted.json()["event_type"] == "badge.deleted"
        assert deleted.json()["badge"]["recipient_email"] == "b@example.org"
        assert (await client.get(f"{api}/badges/{ids[1]}")).status_code == 404
        event = await client.get(f"{api}/events/{deleted.json()['id']}")
        assert event.json()["data"]["badge"]["id"] == ids[1]
        state = (await client.get("/_sandbox/state")).json()["credly"]
    assert state["deleted_badges"] == [ids[1]]
    assert [e["event_type"] for e in state["events"]] == [
        "badge.created", "badge.created", "badge.state.changed", "badge.deleted"]
    with pytest.raises(ValueError):
        emulator.set_options({"credly_badge_state_event": "badge.changed"})
