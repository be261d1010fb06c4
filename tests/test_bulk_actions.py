"""Bulk revoke / re-send / retry by filter (services/bulk_actions.py, cli/bulk.py).

Awards come in through real event intake; every run goes through the single-badge code paths,
so the checks are on what a single revoke or re-send leaves behind: badge statuses and
reasons, delivery jobs, outgoing events, progress, audit entries, and the emulator's badges
once delivered.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import badgetui.cli as cli_main
import badgetui.services.badge_actions as badge_actions_module
from badgetui.cli import bulk as bulk_cli
from badgetui.domain.events import BADGE_AWARDED as AWARDED
from badgetui.domain.events import BADGE_REVOKED as REVOKED
from badgetui.services.bulk_actions import BadgeFilter, BulkActions, parse_learners
from badgetui.services.common import ServiceError, from_db
from badgetui.store.models import (
    AuditLog,
    Badge,
    DeliveryJob,
    Fulfillment,
    Learner,
    OutgoingEvent,
    Progress,
    Template,
)
from tests.conftest import CREDLY_ORG, credly_templates
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    table_snapshot,
    template_config,
)
from tests.test_delivery import CREDLY_KEY, emu_badges

A, B = "tpl-a", "tpl-b"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # tests.helpers' event times start here
TPL1, TPL2 = (t["id"] for t in credly_templates(2))
REASON = "issued in error"


def entry(external_id: str, course: str = DEMO) -> dict:
    return template_config(
        external_id,
        [requirement("pass", rule("is_passing", "true"), rule("course.course_key", course))],
        [penalty(["pass"], rule("is_passing", "false"), rule("course.course_key", course))])


def setup(services, synced) -> None:
    """Two credly templates: A is earned by passing DEMO, B by passing OTHER."""
    synced(A, B)
    services.config.import_text(config_text(entry(A), entry(B, OTHER)))


async def configure_two(svc) -> None:
    """The emulator's first two Credly templates: TPL1 for DEMO, TPL2 for OTHER."""
    account = await svc.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    await svc.sync.sync(account.id)
    svc.config.import_text(config_text(entry(TPL1), entry(TPL2, OTHER)))


def award(services, *names: str, course: str = DEMO, seconds: int | None = None) -> None:
    services.intake.ingest_lines(jsonl(*(course_event(n, course, seconds=seconds)
                                         for n in names)), "test")


def badge(username: str, template: str = A, status: str | None = None):
    query = (Badge.select().join(Learner).switch(Badge).join(Template)
             .where((Learner.username == username) & (Template.external_id == template)))
    if status:
        query = query.where(Badge.status == status)
    return query.order_by(Badge.id.desc()).get()


def jobs(badge_id: int) -> list[tuple[str, str]]:
    return sorted((j.kind, j.state) for j in DeliveryJob.select().where(
        DeliveryJob.badge == badge_id))


def outgoing(badge_id: int) -> list[str]:
    return sorted(e.event_type for e in OutgoingEvent.select().where(
        OutgoingEvent.badge == badge_id))


def effects(badge_id: int) -> dict:
    """What a revoke leaves behind for one badge, without what differs between learners."""
    b = Badge.get_by_id(badge_id)
    progress = Progress.get((Progress.learner == b.learner_id)
                            & (Progress.template == b.template_id))
    revoked_event = [json.loads(e.payload) for e in OutgoingEvent.select().where(
        (OutgoingEvent.badge == badge_id) & (OutgoingEvent.event_type == REVOKED))]
    return {
        "status": b.status, "provider_state": b.provider_state, "reason": b.revoke_reason,
        "revoked_at": b.revoked_at, "evidence": json.loads(b.evidence)["revoked"],
        "jobs": sorted((j.kind, j.state, j.attempts) for j in DeliveryJob.select().where(
            DeliveryJob.badge == badge_id)),
        "outgoing": outgoing(badge_id), "revoked_events": len(revoked_event),
        "event_is_this_badge": [(p["uuid"], p["user"]["pii"]["username"])
                                == (b.uuid, b.learner.username) for p in revoked_event],
        "progress": (progress.complete, progress.fulfilled_groups, progress.badge_id),
        "fulfillments": Fulfillment.select().where(Fulfillment.progress == progress.id).count(),
        "audit": [(a.action, a.actor, json.loads(a.detail)) for a in AuditLog.select().where(
            AuditLog.target == b.uuid).order_by(AuditLog.id)],
    }


def without_audit(snapshot: dict) -> dict:
    return {k: v for k, v in snapshot.items() if k != "audit_log"}


def mark_delivered(*badge_ids: int) -> None:
    """As a delivery worker would have: the issue done, the badge at the provider."""
    for bid in badge_ids:
        DeliveryJob.update(state="done", attempts=1).where(
            (DeliveryJob.badge == bid) & (DeliveryJob.kind == "issue")).execute()
        Badge.update(provider_state="pending", external_id=f"ext-{bid}").where(
            Badge.id == bid).execute()


@pytest.fixture
def bulk(services) -> BulkActions:
    return BulkActions(services.clock, services.badges)


# -- revoke ------------------------------------------------------------------------------------
@pytest.mark.parametrize("delivered", [False, True], ids=["not-sent", "at-provider"])
def test_bulk_revoke_leaves_exactly_what_single_revokes_leave(services, synced, bulk,
                                                              delivered):
    setup(services, synced)
    award(services, "ann", "bob", "cat", "dan")
    ids = {n: badge(n).id for n in ("ann", "bob", "cat", "dan")}
    if delivered:
        mark_delivered(*ids.values())
    services.badges.revoke(ids["ann"], REASON)
    report = bulk.revoke(BadgeFilter(learners=["bob", "cat"]), REASON)
    assert (report.matched, report.total, report.done, report.skipped, report.failed) == (
        2, 2, 2, 0, [])
    single = effects(ids["ann"])
    assert effects(ids["bob"]) == single and effects(ids["cat"]) == single
    assert single["status"] == "revoked"
    assert single["reason"] == f"revoked by operator: {REASON}"
    assert single["outgoing"] == [AWARDED, REVOKED]
    assert single["progress"] == (False, 0, None) and single["fulfillments"] == 0
    if delivered:  # at the provider: a revoke job to deliver
        assert single["jobs"] == [("issue", "done", 1), ("revoke", "queued", 0)]
        assert single["provider_state"] == "pending"
    else:  # never sent: the issue is cancelled, nothing to revoke there
        assert single["jobs"] == [("issue", "cancelled", 0)]
        assert single["provider_state"] == "cancelled"
    dan = badge("dan")
    assert dan.status == "awarded" and outgoing(dan.id) == [AWARDED]
    assert Progress.get(Progress.badge == dan.id).complete
    bulk_audit = AuditLog.get(AuditLog.action == "badges.bulk_revoke")
    assert bulk_audit.target == "2 learners"
    assert json.loads(bulk_audit.detail) == {"badges": 2, "reason": REASON}


def test_revoke_by_template_counts_what_it_does_and_skips_what_it_cannot(services, synced,
                                                                        bulk):
    setup(services, synced)
    award(services, "ann", "bob", "cat")
    award(services, "ann", "bob", course=OTHER)
    services.badges.revoke(badge("ann").id, "earlier")
    by_external = BadgeFilter(template=A)
    by_local = BadgeFilter(template=Template.get(Template.external_id == A).id)
    assert bulk.count(by_external, "revoke") == bulk.count(by_local, "revoke") == 2
    assert bulk.count(BadgeFilter(template=A, status="revoked"), "revoke") == 0
    assert bulk.count(BadgeFilter(), "revoke") == 4
    dry = bulk.count(by_external, "revoke")
    report = bulk.revoke(by_external, REASON)
    assert report.done == dry == 2
    assert (report.matched, report.skipped, report.failed) == (3, 1, [])
    assert {(b.learner.username, b.template.external_id, b.status)
            for b in Badge.select()} == {
        ("ann", A, "revoked"), ("bob", A, "revoked"), ("cat", A, "revoked"),
        ("ann", B, "awarded"), ("bob", B, "awarded")}
    assert badge("ann").revoke_reason == "revoked by operator: earlier"  # not revoked twice
    assert badge("bob").revoke_reason == f"revoked by operator: {REASON}"

    before = table_snapshot()
    again = bulk.revoke(by_external, REASON)  # idempotent: nothing left to revoke
    assert (again.total, again.done, again.skipped, again.failed) == (0, 0, 3, [])
    assert without_audit(table_snapshot()) == without_audit(before)


def test_revoke_needs_a_reason_and_changes_nothing_without(services, synced, bulk):
    setup(services, synced)
    award(services, "ann")
    before = table_snapshot()
    for reason in ("", "   ", "\n\t"):
        with pytest.raises(ServiceError, match="needs a reason"):
            bulk.revoke(BadgeFilter(template=A), reason)
    assert table_snapshot() == before


def test_unknown_template_and_bad_values_are_refused(services, synced, bulk):
    setup(services, synced)
    with pytest.raises(ServiceError, match="no template"):
        bulk.count(BadgeFilter(template="nope"), "revoke")
    with pytest.raises(ServiceError, match="unknown provider state"):
        bulk.count(BadgeFilter(provider_state="lost"), "revoke")
    with pytest.raises(ServiceError, match="unknown bulk action"):
        bulk.count(BadgeFilter(template=A), "delete")


def test_date_filters_after_inclusive_before_exclusive(services, synced, bulk):
    setup(services, synced)
    award(services, "ann", seconds=100)
    award(services, "bob", seconds=3600)
    award(services, "cat", seconds=7200)
    hour = T0 + timedelta(seconds=3600)

    def names(selection: BadgeFilter) -> set[str]:
        return {b.username for b in bulk.preview(selection, "revoke")}

    assert names(BadgeFilter(awarded_after=hour)) == {"bob", "cat"}
    assert names(BadgeFilter(awarded_before=hour)) == {"ann"}
    assert names(BadgeFilter(awarded_after=T0 + timedelta(seconds=100),
                             awarded_before=T0 + timedelta(seconds=7200))) == {"ann", "bob"}
    naive = datetime(2026, 11, 1, 10, 0)  # naive = UTC
    assert names(BadgeFilter(awarded_after=naive)) == {"bob", "cat"}
    noon_at_plus_one = datetime(2026, 11, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    assert names(BadgeFilter(awarded_before=noon_at_plus_one)) == {"ann", "bob"}  # 11:00 UTC
    with pytest.raises(ServiceError, match="range is empty"):
        bulk.count(BadgeFilter(awarded_after=hour, awarded_before=hour), "revoke")

    report = bulk.revoke(BadgeFilter(template=A, awarded_after=hour), REASON)
    assert report.done == 2
    assert {b.learner.username for b in Badge.select().where(Badge.status == "revoked")} == {
        "bob", "cat"}
    assert badge("ann").status == "awarded"


def test_learner_list_parsing_and_filter(services, synced, bulk):
    text = "# who was issued by mistake\n\n  ann  \nbob\n# not cat\nbob\nzed\n\n"
    assert parse_learners(text) == ["ann", "bob", "zed"]
    assert parse_learners("# nobody\n\n") == []
    setup(services, synced)
    award(services, "ann", "bob", "cat")
    award(services, "ann", course=OTHER)
    selection = BadgeFilter(learners=parse_learners(text))
    assert bulk.missing_learners(selection) == ["zed"]
    assert bulk.count(selection, "revoke") == 3
    assert bulk.count(BadgeFilter(template=B, learners=["bob", "cat"]), "revoke") == 0
    assert bulk.count(BadgeFilter(learners=[]), "revoke") == 0  # never "everyone"
    report = bulk.revoke(BadgeFilter(template=A, learners=parse_learners(text)), REASON)
    assert report.done == 2
    assert badge("ann").status == badge("bob").status == "revoked"
    assert badge("cat").status == "awarded" and badge("ann", B).status == "awarded"


def test_many_learners_are_looked_up_in_batches(services, synced, bulk):
    setup(services, synced)
    award(services, "ann", "bob")
    names = [f"nobody{n}" for n in range(1200)] + ["bob"]
    selection = BadgeFilter(learners=names)
    assert bulk.count(selection, "revoke") == 1
    assert len(bulk.missing_learners(selection)) == 1200
    assert bulk.revoke(selection, REASON).done == 1
    assert badge("bob").status == "revoked" and badge("ann").status == "awarded"


class Killed(Exception):
    pass


def test_resumable_after_a_kill(services, synced):
    setup(services, synced)
    names = ["ann", "bob", "cat", "dan", "eve"]
    award(services, *names)
    ids = sorted(badge(n).id for n in names)
    calls: list[tuple[int, int]] = []

    def killed(done: int, total: int) -> None:
        calls.append((done, total))
        raise Killed

    first = BulkActions(services.clock, services.badges, chunk_size=2)
    with pytest.raises(Killed):
        first.revoke(BadgeFilter(template=A), REASON, on_progress=killed)
    assert calls == [(2, 5)]
    statuses = [Badge.get_by_id(i).status for i in ids]
    assert statuses == ["revoked", "revoked", "awarded", "awarded", "awarded"]
    assert first.count(BadgeFilter(template=A), "revoke") == 3

    calls.clear()
    again = BulkActions(services.clock, services.badges, chunk_size=2)
    report = again.revoke(BadgeFilter(template=A), REASON,
                          on_progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 3), (3, 3)]
    assert (report.matched, report.total, report.done, report.skipped, report.failed) == (
        5, 3, 3, 2, [])
    assert all(Badge.get_by_id(i).status == "revoked" for i in ids)
    for i in ids:  # each revoked once: one event, one cancelled issue, one audit entry
        assert outgoing(i) == [AWARDED, REVOKED]
        assert jobs(i) == [("issue", "cancelled")]
        uuid = Badge.get_by_id(i).uuid
        assert AuditLog.select().where((AuditLog.target == uuid)
                                       & (AuditLog.action == "badge.revoke")).count() == 1
    third = again.revoke(BadgeFilter(template=A), REASON)
    assert (third.done, third.skipped) == (0, 5)


def test_a_badge_revoked_meanwhile_is_skipped(services, synced):
    setup(services, synced)
    award(services, "ann", "bob", "cat", "dan", "eve")
    eve = badge("eve").id
    bulk = BulkActions(services.clock, services.badges, chunk_size=2)

    def meanwhile(done: int, total: int) -> None:
        if done == 2:  # another operator (or a penalty) gets there first
            services.badges.revoke(eve, "someone else")

    report = bulk.revoke(BadgeFilter(template=A), REASON, on_progress=meanwhile)
    assert (report.total, report.done, report.skipped, report.failed) == (5, 4, 1, [])
    assert Badge.get_by_id(eve).revoke_reason == "revoked by operator: someone else"
    assert outgoing(eve) == [AWARDED, REVOKED]


def test_an_award_made_during_a_run_waits_for_the_next_run(services, synced):
    setup(services, synced)
    award(services, "ann", "bob", "cat")
    bulk = BulkActions(services.clock, services.badges, chunk_size=2)
    seen: list[tuple[int, int]] = []

    def meanwhile(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            award(services, "zoe")  # after the count the operator confirmed

    report = bulk.revoke(BadgeFilter(template=A), REASON, on_progress=meanwhile)
    assert seen == [(2, 3), (3, 3)] and (report.total, report.done) == (3, 3)
    assert badge("zoe").status == "awarded"
    assert bulk.revoke(BadgeFilter(template=A), REASON).done == 1
    assert badge("zoe").status == "revoked"


def test_a_failing_badge_is_rolled_back_alone_and_reported(services, synced, monkeypatch):
    setup(services, synced)
    award(services, "ann", "bob", "cat")
    victim = badge("bob")
    real = badge_actions_module.audit

    def audit(clock, action, target, detail="", actor="operator"):
        if target == victim.uuid:  # a real database error, after every write of the revoke
            AuditLog.create(at=None, actor=actor, action=action, target=target)
        return real(clock, action, target, detail, actor=actor)

    monkeypatch.setattr(badge_actions_module, "audit", audit)
    bulk = BulkActions(services.clock, services.badges, chunk_size=2)
    report = bulk.revoke(BadgeFilter(template=A), REASON)
    assert (report.done, report.skipped) == (2, 0)
    (line,) = report.failed
    assert line.startswith(f"badge {victim.id} (bob, template {A}): IntegrityError")
    assert "\n" not in line
    assert badge("ann").status == badge("cat").status == "revoked"
    bob = Badge.get_by_id(victim.id)  # untouched: the savepoint took every write back
    assert (bob.status, bob.revoke_reason, bob.provider_state) == ("awarded", "", "created")
    assert jobs(bob.id) == [("issue", "queued")] and outgoing(bob.id) == [AWARDED]
    progress = Progress.get(Progress.badge == bob.id)
    assert progress.complete and Fulfillment.select().where(
        Fulfillment.progress == progress.id).count() == 1

    monkeypatch.setattr(badge_actions_module, "audit", real)
    rerun = bulk.revoke(BadgeFilter(template=A), REASON)  # picks up what is left
    assert (rerun.done, rerun.skipped, rerun.failed) == (1, 2, [])
    assert Badge.get_by_id(bob.id).status == "revoked"


# -- resend and retry --------------------------------------------------------------------------
def test_resend_skips_what_is_on_its_way_and_is_idempotent(services, synced, bulk):
    setup(services, synced)
    award(services, "ann", "bob", "cat")
    ann, bob, cat = (badge(n).id for n in ("ann", "bob", "cat"))
    everything = BadgeFilter(template=A)
    assert bulk.count(everything, "resend") == 0  # every issue still queued
    assert bulk.resend(everything).done == 0
    mark_delivered(ann, bob)
    DeliveryJob.update(state="failed", attempts=1, last_error="issue failed: nope").where(
        DeliveryJob.badge == cat).execute()
    Badge.update(provider_state="error").where(Badge.id == cat).execute()
    services.badges.revoke(ann, "gone")
    assert bulk.count(everything, "resend") == 2
    assert bulk.count(BadgeFilter(template=A, failed_only=True), "resend") == 1

    report = bulk.resend(everything)
    assert (report.matched, report.done, report.skipped, report.failed) == (3, 2, 1, [])
    issues = {bid: sorted((j.state, j.attempts) for j in DeliveryJob.select().where(
        (DeliveryJob.badge == bid) & (DeliveryJob.kind == "issue"))) for bid in (bob, cat)}
    # bob: a new issue that looks the provider up first; cat: its failed issue requeued
    assert issues == {bob: [("done", 1), ("queued", 1)], cat: [("queued", 1)]}
    assert jobs(ann) == [("issue", "done"), ("revoke", "queued")]  # revoked: left alone
    assert AuditLog.select().where(AuditLog.action == "badge.resend").count() == 2

    before = table_snapshot()
    again = bulk.resend(everything)
    assert (again.total, again.done, again.skipped) == (0, 0, 3)
    assert without_audit(table_snapshot()) == without_audit(before)


def test_retry_requeues_failed_jobs_once(services, synced, bulk, clock):
    setup(services, synced)
    award(services, "ann", "bob", "cat")
    ann, bob, cat = (badge(n).id for n in ("ann", "bob", "cat"))
    mark_delivered(bob, cat)
    services.badges.revoke(cat, "gone")
    DeliveryJob.update(state="failed", attempts=1).where(
        ((DeliveryJob.badge == ann) & (DeliveryJob.kind == "issue"))
        | ((DeliveryJob.badge == cat) & (DeliveryJob.kind == "revoke"))).execute()
    assert jobs(ann) == [("issue", "failed")] and jobs(cat) == [("issue", "done"),
                                                                 ("revoke", "failed")]
    assert bulk.count(BadgeFilter(template=A), "retry") == 2
    assert bulk.count(BadgeFilter(status="revoked"), "retry") == 1
    assert bulk.count(BadgeFilter(failed_only=True), "retry") == 2
    clock.advance(60)
    report = bulk.retry(BadgeFilter(template=A))
    assert (report.matched, report.done, report.skipped, report.failed) == (3, 2, 1, [])
    assert jobs(ann) == [("issue", "queued")] and jobs(cat) == [("issue", "done"),
                                                                 ("revoke", "queued")]
    requeued = DeliveryJob.select().where(DeliveryJob.state == "queued")
    assert {from_db(j.next_attempt_at) for j in requeued} == {clock()}
    assert jobs(bob) == [("issue", "done")]
    assert AuditLog.select().where(AuditLog.action == "badge.retry").count() == 2
    before = table_snapshot()
    assert bulk.retry(BadgeFilter(template=A)).done == 0
    assert without_audit(table_snapshot()) == without_audit(before)


# -- at the provider (the in-process emulator) ---------------------------------------------------
async def test_bulk_revoke_reaches_credly(fast, emulator):
    await configure_two(fast)
    fast.intake.ingest_lines(jsonl(*(course_event(n, DEMO) for n in ("ann", "bob", "cat")),
                                   course_event("ann", OTHER)), "t")
    assert (await fast.delivery.run()).counts["issued"] == 4
    bulk = BulkActions(fast.clock, fast.badges, chunk_size=2)
    selection = BadgeFilter(template=TPL1)
    assert bulk.count(selection, "revoke") == 3
    report = bulk.revoke(selection, REASON)
    assert (report.done, report.failed) == (3, [])
    delivery = await fast.delivery.run()
    assert delivery.counts["revoked"] == 3
    remote = {(b["issuer_earner_id"], b["badge_template_id"]): b["state"]
              for b in emu_badges(emulator)}
    assert remote == {("ann", TPL1): "revoked", ("bob", TPL1): "revoked",
                      ("cat", TPL1): "revoked", ("ann", TPL2): "pending"}
    assert {(b.template.external_id, b.status, b.provider_state) for b in Badge.select()} == {
        (TPL1, "revoked", "revoked"), (TPL2, "awarded", "pending")}
    assert all(j.state == "done" for j in DeliveryJob.select())


async def test_bulk_resend_after_delivery_adopts_never_issues_twice(fast, emulator):
    await configure_two(fast)
    fast.intake.ingest_lines(jsonl(*(course_event(n, DEMO) for n in ("ann", "bob"))), "t")
    await fast.delivery.run()
    bulk = BulkActions(fast.clock, fast.badges)
    assert bulk.resend(BadgeFilter(template=TPL1)).done == 2
    assert bulk.resend(BadgeFilter(template=TPL1)).done == 0  # a re-run before delivery
    delivery = await fast.delivery.run()
    assert delivery.counts["adopted"] == 2 and delivery.counts["issued"] == 0
    assert len(emu_badges(emulator)) == 2
    assert {b.external_id for b in Badge.select()} == {b["id"] for b in emu_badges(emulator)}


async def test_bulk_retry_delivers_failed_issues_and_revokes(fast, emulator):
    await configure_two(fast)
    emulator.set_faults({"credly.issue": {"fail_next": [422, 422, 422]}})
    fast.intake.ingest_lines(jsonl(*(course_event(n, DEMO) for n in ("ann", "bob", "cat"))),
                             "t")
    assert (await fast.delivery.run()).counts["failed"] == 3
    assert emu_badges(emulator) == []
    bulk = BulkActions(fast.clock, fast.badges)
    assert bulk.count(BadgeFilter(failed_only=True), "retry") == 3
    assert bulk.retry(BadgeFilter(provider_state="error")).done == 3
    assert bulk.retry(BadgeFilter(provider_state="error")).done == 0
    assert (await fast.delivery.run()).counts["issued"] == 3
    assert sorted(b["state"] for b in emu_badges(emulator)) == ["pending"] * 3

    emulator.set_faults({"credly.revoke": {"fail_next": [422, 422]}})
    bulk.revoke(BadgeFilter(template=TPL1, learners=["ann", "bob"]), REASON)
    assert (await fast.delivery.run()).counts["failed"] == 2
    assert bulk.count(BadgeFilter(status="revoked"), "retry") == 2
    assert bulk.retry(BadgeFilter(status="revoked")).done == 2
    assert (await fast.delivery.run()).counts["revoked"] == 2
    remote = {b["issuer_earner_id"]: b["state"] for b in emu_badges(emulator)}
    assert remote == {"ann": "revoked", "bob": "revoked", "cat": "pending"}


# -- the command line ----------------------------------------------------------------------------
class Wired:
    """The test's services with `bulk` (what Services.open wires), for the CLI handler."""

    def __init__(self, services, chunk_size: int) -> None:
        self._services = services
        self.bulk = BulkActions(services.clock, services.badges, chunk_size=chunk_size)

    def __getattr__(self, name: str):
        return getattr(self._services, name)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `badgetui ARGS` in process (main's error handling included) on given services."""

    def run(services, *argv: str, chunk_size: int = 500) -> tuple[int, str, str]:
        wired = Wired(services, chunk_size)
        monkeypatch.setattr(bulk_cli, "open_services", lambda args: wired)
        code = cli_main.main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_revoke_needs_yes_dry_run_counts_and_run_delivers(fast, emulator, cli):
    asyncio.run(configure_two(fast))
    names = [f"learner{n:02d}" for n in range(22)]
    fast.intake.ingest_lines(jsonl(*(course_event(n, DEMO) for n in names),
                                   course_event("ann", OTHER)), "t")
    asyncio.run(fast.delivery.run())
    before = table_snapshot()

    code, out, err = cli(fast, "bulk", "revoke", "--template", TPL1, "--reason", REASON)
    assert (code, out) == (1, "")
    assert err == "badgetui: error: would revoke 22 badges: re-run with --yes\n"
    code, _, err = cli(fast, "bulk", "revoke", "--reason", REASON, "--yes")
    assert code == 1 and "needs at least one filter" in err and err.count("\n") == 1
    code, _, err = cli(fast, "bulk", "revoke", "--template", TPL1, "--reason", " ", "--yes")
    assert code == 1 and "needs a reason" in err

    code, out, _ = cli(fast, "bulk", "revoke", "--template", TPL1, "--reason", REASON,
                       "--dry-run")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "dry run: would revoke 22 badges (the first 20):"
    assert lines[1].split() == ["ID", "LEARNER", "TEMPLATE", "STATUS", "PROVIDER", "STATE"]
    assert len(lines) == 22 and lines[2].split()[1:] == ["learner00", TPL1, "awarded",
                                                         "pending"]
    code, out, _ = cli(fast, "bulk", "revoke", "--template", TPL1, "--reason", REASON,
                       "--dry-run", "--yes", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["count"] == 22 and len(dry["badges"]) == 20
    assert table_snapshot() == before  # refusals and dry runs change nothing

    code, out, err = cli(fast, "bulk", "revoke", "--template", TPL1, "--reason", REASON,
                         "--yes", chunk_size=10)
    assert code == 0, err
    assert out.splitlines()[0] == "revoked 22 badges, 0 skipped, 0 failed"
    assert "delivery: issued 0, adopted 0, revoked 22" in out
    assert err.splitlines() == ["revoke: 10/22 badges", "revoke: 20/22 badges",
                                "revoke: 22/22 badges"]
    remote = [b for b in emu_badges(emulator) if b["badge_template_id"] == TPL1]
    assert len(remote) == 22 and {b["state"] for b in remote} == {"revoked"}
    assert [b["state"] for b in emu_badges(emulator) if b["badge_template_id"] == TPL2] == [
        "pending"]

    code, out, _ = cli(fast, "bulk", "revoke", "--template", TPL1, "--reason", REASON,
                       "--yes", "--json")
    again = json.loads(out)
    assert code == 0 and (again["done"], again["skipped"], again["total"]) == (0, 22, 0)


def test_cli_learner_file_and_dates(services, synced, cli, tmp_path: Path):
    setup(services, synced)
    award(services, "ann", seconds=100)
    award(services, "bob", seconds=3600)
    award(services, "cat", seconds=7200)
    learners = tmp_path / "learners.txt"
    learners.write_text("# issued by mistake\nann\n\nbob\ncat\nzed\n", encoding="utf-8")
    code, out, err = cli(services, "bulk", "revoke", "--learners", str(learners),
                         "--awarded-after", "2026-11-01T10:00:00", "--reason", REASON,
                         "--yes", "--no-deliver")
    assert code == 0, err
    assert "warning: 1 of the 4 learners" in err and "zed" in err
    assert out.splitlines() == ["revoked 2 badges, 0 skipped, 0 failed",
                                "provider jobs left queued (run `badgetui deliver`)"]
    assert {b.learner.username for b in Badge.select().where(Badge.status == "revoked")} == {
        "bob", "cat"}
    assert DeliveryJob.select().where(DeliveryJob.state == "running").count() == 0

    code, out, _ = cli(services, "bulk", "revoke", "--template", A, "--awarded-before",
                       "2026-11-01T09:30+00:00", "--reason", REASON, "--dry-run", "--json")
    assert code == 0 and [b["username"] for b in json.loads(out)["badges"]] == ["ann"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n\n", encoding="utf-8")
    code, _, err = cli(services, "bulk", "revoke", "--learners", str(empty), "--reason",
                       REASON, "--yes")
    assert code == 1 and "names no learners" in err
    code, _, err = cli(services, "bulk", "revoke", "--learners", str(tmp_path / "none.txt"),
                       "--reason", REASON, "--yes")
    assert code == 1 and "no such file" in err
    with pytest.raises(SystemExit):
        cli(services, "bulk", "revoke", "--awarded-before", "last tuesday", "--reason", REASON)
    assert bulk_cli.moment("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert bulk_cli.moment("2026-11-01T10:00:00+01:00") == datetime(2026, 11, 1, 9,
                                                                    tzinfo=UTC)
    assert badge("ann").status == "awarded"


def test_cli_retry_and_resend(fast, emulator, cli):
    asyncio.run(configure_two(fast))
    emulator.set_faults({"credly.issue": {"fail_next": [422, 422]}})
    fast.intake.ingest_lines(jsonl(*(course_event(n, DEMO) for n in ("ann", "bob", "cat"))),
                             "t")
    asyncio.run(fast.delivery.run())
    assert len(emu_badges(emulator)) == 1
    code, _, err = cli(fast, "bulk", "retry", "--failed-only")
    assert code == 1 and err == "badgetui: error: would retry 2 badges: re-run with --yes\n"
    code, out, err = cli(fast, "bulk", "retry", "--failed-only", "--yes", "--json")
    result = json.loads(out)
    assert code == 0, err
    assert (result["done"], result["delivery"]["issued"]) == (2, 2)
    assert len(emu_badges(emulator)) == 3
    code, out, _ = cli(fast, "bulk", "resend", "--template", TPL1, "--yes")
    assert code == 0 and out.splitlines()[0] == "re-sent 3 badges, 0 skipped, 0 failed"
    assert "adopted 3" in out and len(emu_badges(emulator)) == 3
