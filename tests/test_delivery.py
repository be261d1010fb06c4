"""Delivery to the emulator: issue, revoke, retries, pauses, failures, exactly once."""

from __future__ import annotations

from badgetui.store.models import Badge, DeliveryJob, ProviderAccount, Template
from tests.conftest import CREDLY_ORG, credly_templates
from tests.helpers import (
    DEMO,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    template_config,
)

CREDLY_KEY = "sandbox-credly-key"
TPL = credly_templates(1)[0]["id"]


async def configure(svc, *, provider: str = "credly", external_id: str = TPL) -> None:
    if provider == "credly":
        account = await svc.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    else:
        account = await svc.accounts.add_accredible("Example Accredible",
                                                    "sandbox-accredible-key")
    await svc.sync.sync(account.id)
    entry = template_config(external_id, [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO))],
        [penalty(["demo"], rule("is_passing", "false"), rule("course.course_key", DEMO))],
        provider=provider)
    svc.config.import_text(config_text(entry))


def emu_badges(emulator) -> list[dict]:
    return emulator.state()["credly"]["badges"]


async def test_issue_then_revoke_reach_credly(fast, emulator):
    await configure(fast)
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["issued"] == 1
    (remote,) = emu_badges(emulator)
    assert remote["badge_template_id"] == TPL and remote["state"] == "pending"
    assert remote["issuer_earner_id"] == "ann" and remote["recipient_email"] == "ann@example.org"
    badge = Badge.get()
    assert (badge.external_id, badge.provider_state) == (remote["id"], "pending")

    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO, passing=False)), "t")
    report = await fast.delivery.run()
    assert report.counts["revoked"] == 1
    assert emu_badges(emulator)[0]["state"] == "revoked"
    assert Badge.get().provider_state == "revoked"


async def test_reaward_after_revoke_is_a_new_badge_at_credly(fast, emulator):
    await configure(fast)
    for passing in (True, False, True):
        fast.intake.ingest_lines(jsonl(course_event("ann", DEMO, passing=passing)), "t")
        await fast.delivery.run()
    states = sorted(b["state"] for b in emu_badges(emulator))
    assert states == ["pending", "revoked"]
    ours = sorted((b.status, b.provider_state) for b in Badge.select())
    assert ours == [("awarded", "pending"), ("revoked", "revoked")]


async def test_accredible_issue_and_expire(fast, emulator):
    await configure(fast, provider="accredible", external_id="9001")
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    await fast.delivery.run()
    (cred,) = emulator.state()["accredible"]["credentials"]
    assert cred["group_id"] == 9001 and cred["recipient"]["email"] == "ann@example.org"
    assert Badge.get().external_id == str(cred["id"])
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO, passing=False)), "t")
    await fast.delivery.run()
    (cred,) = emulator.state()["accredible"]["credentials"]
    assert cred["expired_on"] is not None
    assert Badge.get().provider_state == "expired"


async def test_retry_after_is_honoured(fast, emulator, clock):
    await configure(fast)
    emulator.set_faults({"credly.issue": {"fail_next": [429], "retry_after": 7}})
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    start = clock()
    report = await fast.delivery.run()
    assert report.counts["retried"] == 1 and report.counts["issued"] == 1
    assert (clock() - start).total_seconds() >= 7
    assert len(emu_badges(emulator)) == 1


async def test_failure_after_the_effect_is_reconciled_not_issued_twice(fast, emulator):
    await configure(fast)
    emulator.set_faults({"credly.issue": {"fail_next": [500], "phase": "after"}})
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["adopted"] == 1 and report.counts["issued"] == 0
    (remote,) = emu_badges(emulator)
    assert Badge.get().external_id == remote["id"]


async def test_auth_error_pauses_the_account_and_resume_delivers(fast, emulator):
    await configure(fast)
    ProviderAccount.update(api_key="rotated-away-9999").execute()
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.paused and "…9999" in report.paused[0] and "rotated-away" not in report.paused[0]
    account = ProviderAccount.get()
    assert account.paused_reason
    assert DeliveryJob.get().state == "queued"
    assert emu_badges(emulator) == []
    ProviderAccount.update(api_key=CREDLY_KEY).execute()
    fast.accounts.resume(account.id)
    await fast.delivery.run()
    assert len(emu_badges(emulator)) == 1 and DeliveryJob.get().state == "done"


async def test_permanent_error_fails_the_job_and_retry_failed_requeues(fast, emulator):
    await configure(fast)
    emulator.credly_template(CREDLY_ORG, "archive", credly_templates(1)[0])
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await fast.delivery.run()
    assert report.counts["failed"] == 1
    job = DeliveryJob.get()
    assert job.state == "failed" and job.last_error
    badge = Badge.get()
    assert badge.provider_state == "error" and badge.last_error == job.last_error
    emulator.credly_template(CREDLY_ORG, "change", {**credly_templates(1)[0], "state": "active"})
    assert fast.delivery.retry_failed() == 1
    await fast.delivery.run()
    assert DeliveryJob.get().state == "done" and len(emu_badges(emulator)) == 1


async def test_revoke_before_issue_was_sent_cancels_the_issue(fast, emulator):
    await configure(fast)
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO),
                                   course_event("ann", DEMO, passing=False)), "t")
    report = await fast.delivery.run()
    assert emu_badges(emulator) == []
    assert sorted((j.kind, j.state) for j in DeliveryJob.select()) == [("issue", "cancelled")]
    assert report.counts["issued"] == 0


async def test_concurrency_per_account_is_respected(make_provider_services, emulator, clock):
    svc = make_provider_services(delivery_concurrency=3)
    await configure(svc)
    emulator.set_faults({"credly.issue": {"latency_ms": 30}})
    events = [course_event(f"l{n}", DEMO, uid=100 + n) for n in range(30)]
    svc.intake.ingest_lines(jsonl(*events), "t")
    await svc.delivery.run()
    assert len(emu_badges(emulator)) == 30
    assert emulator.counters()["credly.issue"]["max_in_flight"] <= 3
    assert Template.select().count() >= 1


async def test_accredible_reaward_restores_the_expired_credential(fast, emulator):
    await configure(fast, provider="accredible", external_id="9001")
    for passing in (True, False, True):
        fast.intake.ingest_lines(jsonl(course_event("ann", DEMO, passing=passing)), "t")
        await fast.delivery.run()
    (cred,) = emulator.state()["accredible"]["credentials"]
    assert cred["expired_on"] is None  # the group refuses a second credential for one email
    held = Badge.get(Badge.status == "awarded")
    assert held.external_id == str(cred["id"]) and held.provider_state == "accepted"
