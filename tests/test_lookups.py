"""Provider lookups adopt only the learner's own badge (issue 10, items 1-3).

The emulator's `loose_filters` switch makes Credly's `filter=` and Accredible's v2 search match
by prefix or substring and ignore unknown keys, as a real server may; the delivery paths that
look a badge up must still adopt nothing but this learner's badge of this template. Badges
issued without `issuer_earner_id` (Open edX Credentials never sends it) are found by email,
any 422 on an issue looks up first, and a future Accredible expiry is never cleared.
"""

from __future__ import annotations

import httpx

from badgetui.store.models import Badge, DeliveryJob
from tests.conftest import CREDLY_ORG
from tests.helpers import DEMO, course_event, jsonl
from tests.test_delivery import CREDLY_KEY, TPL, configure, emu_badges

GROUP = 9001
ACCREDIBLE_KEY = "sandbox-accredible-key"


def credly_http(emulator) -> httpx.AsyncClient:
    """Another issuer (e.g. Open edX Credentials) talking to the same organization."""
    return httpx.AsyncClient(transport=emulator.transport(),
                             base_url=f"http://sandbox/credly/v1/organizations/{CREDLY_ORG}/",
                             auth=(CREDLY_KEY, ""))


async def issue_elsewhere(emulator, username: str, *, earner: str | None) -> str:
    body = {"recipient_email": f"{username}@example.org", "issued_to_first_name": username,
            "issued_to_last_name": "Elsewhere", "badge_template_id": TPL,
            "issued_at": "2026-10-01 09:00:00 +0000"}
    if earner is not None:
        body["issuer_earner_id"] = earner
    async with credly_http(emulator) as client:
        answer = await client.post("badges", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]["id"]


async def test_loose_filter_never_adopts_another_learners_badge(fast, emulator):
    emulator.set_options({"loose_filters": True})
    other = await issue_elsewhere(emulator, "learner12", earner="learner12")
    await configure(fast)
    # The first issue fails before reaching Credly, so the retry looks the badge up first;
    # a loose server answers `issuer_earner_id::learner1` with learner12's badge.
    emulator.set_faults({"credly.issue": {"fail_next": [503]}})
    fast.intake.ingest_lines(jsonl(course_event("learner1", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["issued"] == 1 and report.counts["adopted"] == 0
    badge = Badge.get()
    assert badge.external_id != other and badge.provider_state == "pending"
    remote = {b["id"]: b for b in emu_badges(emulator)}
    assert remote[badge.external_id]["issuer_earner_id"] == "learner1"
    assert len(remote) == 2


async def test_loose_filter_by_email_never_adopts_another_recipient(fast, emulator):
    emulator.set_options({"loose_filters": True})
    other = await issue_elsewhere(emulator, "learner12", earner=None)
    await configure(fast)
    emulator.set_faults({"credly.issue": {"fail_next": [503]}})
    fast.intake.ingest_lines(jsonl(course_event("learner1", DEMO)), "t")
    await fast.delivery.run()
    assert Badge.get().external_id not in (None, other)
    assert len(emu_badges(emulator)) == 2


async def test_badge_issued_without_earner_id_is_adopted_by_email(fast, emulator):
    existing = await issue_elsewhere(emulator, "learner42", earner=None)
    await configure(fast)
    fast.intake.ingest_lines(jsonl(course_event("learner42", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["adopted"] == 1 and report.counts["failed"] == 0
    badge = Badge.get()
    assert (badge.external_id, badge.provider_state, badge.last_error) == (
        existing, "pending", "")
    assert [b["id"] for b in emu_badges(emulator)] == [existing]


async def test_badge_of_another_earner_with_the_same_email_is_not_adopted(fast, emulator):
    await issue_elsewhere(emulator, "learner42", earner="someone-else")
    await configure(fast)
    fast.intake.ingest_lines(jsonl(course_event("learner42", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["failed"] == 1
    badge = Badge.get()
    assert badge.external_id is None and badge.provider_state == "error"
    assert "already has this badge" in badge.last_error
    assert len(emu_badges(emulator)) == 1


async def test_any_422_on_issue_looks_up_first(fast, emulator):
    await configure(fast)
    # Credly creates the badge, then answers a 422 whose text says nothing about duplicates.
    emulator.set_faults({"credly.issue": {"fail_next": [422], "phase": "after"}})
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["adopted"] == 1 and report.counts["failed"] == 0
    (remote,) = emu_badges(emulator)
    assert Badge.get().external_id == remote["id"]


async def test_422_with_nothing_to_adopt_fails_with_the_providers_message(fast, emulator):
    await configure(fast)
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    emulator.credly_template(CREDLY_ORG, "archive", {"id": TPL})
    report = await fast.delivery.run()
    assert report.counts["failed"] == 1
    badge = Badge.get()
    assert badge.provider_state == "error"
    assert "Badge template is not active" in badge.last_error
    assert DeliveryJob.get().state == "failed"
    assert emu_badges(emulator) == []


# -- Accredible ----------------------------------------------------------------------------
def accredible_http(emulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=emulator.transport(),
                             base_url="http://sandbox/accredible/v1/",
                             headers={"Authorization": f"Token token={ACCREDIBLE_KEY}"})


async def create_elsewhere(emulator, username: str, **fields: object) -> int:
    """A credential as Open edX Credentials creates it: no recipient id."""
    body = {"credential": {"recipient": {"name": username, "email": f"{username}@example.org"},
                           "group_id": GROUP, "issued_on": "2026-10-01", **fields}}
    async with accredible_http(emulator) as client:
        answer = await client.post("credentials", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["credential"]["id"]


def emu_credentials(emulator) -> list[dict]:
    return emulator.state()["accredible"]["credentials"]


async def test_accredible_future_expiry_is_live_and_never_cleared(fast, emulator):
    existing = await create_elsewhere(emulator, "learner42", expired_on="2027-11-01")
    await configure(fast, provider="accredible", external_id=str(GROUP))
    fast.intake.ingest_lines(jsonl(course_event("learner42", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["adopted"] == 1
    (remote,) = emu_credentials(emulator)
    assert remote["id"] == existing and remote["expired_on"] == "2027-11-01"
    badge = Badge.get()
    assert (badge.external_id, badge.provider_state, badge.provider_expires_on) == (
        str(existing), "accepted", "2027-11-01")


async def test_accredible_past_expiry_is_restored_on_reaward(fast, emulator):
    existing = await create_elsewhere(emulator, "learner42", expired_on="2026-10-15")
    await configure(fast, provider="accredible", external_id=str(GROUP))
    fast.intake.ingest_lines(jsonl(course_event("learner42", DEMO)), "t")
    await fast.delivery.run()
    (remote,) = emu_credentials(emulator)
    assert remote["id"] == existing and remote["expired_on"] is None
    assert Badge.get().provider_state == "accepted"


async def test_accredible_loose_search_never_adopts_another_recipient(fast, emulator):
    emulator.set_options({"loose_filters": True})
    other = await create_elsewhere(emulator, "learner12")
    await configure(fast, provider="accredible", external_id=str(GROUP))
    emulator.set_faults({"accredible.credentials.create": {"fail_next": [503]}})
    fast.intake.ingest_lines(jsonl(course_event("learner1", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["issued"] == 1
    badge = Badge.get()
    assert badge.external_id != str(other)
    assert sorted(c["recipient"]["email"] for c in emu_credentials(emulator)) == [
        "learner12@example.org", "learner1@example.org"]


async def test_out_of_credits_is_unpublished_then_resend_publishes(fast, emulator, db_url,
                                                                   monkeypatch, capsys):
    """Issue 10 item 4: a credential Accredible leaves unpublished is not delivered: its own
    provider state, listed by `badges list`, and published by a re-send once credits exist."""
    from badgetui.cli import main

    emulator.set_options({"accredible_credits": 0})
    await configure(fast, provider="accredible", external_id=str(GROUP))
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await fast.delivery.run()
    assert (report.counts["issued"], report.counts["unpublished"]) == (0, 1)
    badge = Badge.get()
    (remote,) = emu_credentials(emulator)
    assert remote["approve"] is False
    assert (badge.provider_state, badge.external_id) == ("unpublished", str(remote["id"]))
    assert "unpublished" in badge.last_error and DeliveryJob.get().state == "failed"

    monkeypatch.setenv("BADGETUI_DB", db_url)
    assert main(["badges", "list", "--provider-state", "unpublished", "--json"]) == 0
    (listed,) = __import__("json").loads(capsys.readouterr().out)
    assert (listed["username"], listed["provider_state"]) == ("ann", "unpublished")

    emulator.set_options({"accredible_credits": 5})
    fast.badges.resend(badge.id)
    report = await fast.delivery.run()
    assert report.counts["adopted"] == 1
    (remote,) = emu_credentials(emulator)  # published, never created twice
    assert remote["approve"] is True
    badge = Badge.get()
    assert (badge.provider_state, badge.last_error) == ("accepted", "")
