"""Backfill with a population preview (issue 13, item 1): the recorded intake events replayed
against a newly activated template, previewed first, applied as ordinary processing, resumable,
idempotent, and equal to having had the template active from the start."""

from __future__ import annotations

import json
from typing import Any

import pytest

from badgetui.cli import main
from badgetui.services import Services
from badgetui.services import backfill as backfill_module
from badgetui.services.common import ServiceError
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Learner,
    OutgoingEvent,
    Progress,
    ProviderAccount,
    Template,
)
from tests.conftest import CREDLY_ORG
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    template_config,
)


def configure(services: Services, synced: Any, *, t2_active: bool) -> None:
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", [requirement("any-demo", rule("course.course_key", DEMO))]),
        template_config("t2", [
            requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                        group="A"),
            requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                        group="B")],
            [penalty(["demo"], rule("is_passing", "false"), rule("course.course_key", DEMO))],
            active=t2_active)))


HISTORY = [
    course_event("ann", DEMO), course_event("ann", OTHER),
    course_event("bob", DEMO),
    course_event("cat", DEMO), course_event("cat", OTHER), course_event("cat", DEMO, False),
    course_event("dan", OTHER),
]


def t2_state() -> tuple[dict[str, tuple[int, bool]], dict[str, list[str]]]:
    """Per learner on t2: (fulfilled groups, complete), and their badges' statuses."""
    tpl = Template.get(Template.external_id == "t2")
    progress = {p.learner.username: (p.fulfilled_groups, bool(p.complete))
                for p in Progress.select().join(Learner).where(Progress.template == tpl.id)}
    badges: dict[str, list[str]] = {}
    for b in Badge.select().join(Learner).where(Badge.template == tpl.id).order_by(Badge.id):
        badges.setdefault(b.learner.username, []).append(b.status)
    return progress, badges


def test_preview_then_apply_then_nothing_more(services, synced):
    configure(services, synced, t2_active=False)
    services.intake.ingest_lines(jsonl(*HISTORY), "history")
    t2 = Template.get(Template.external_id == "t2")
    before = (Badge.select().count(), Progress.select().count(), OutgoingEvent.select().count())
    preview = services.backfill.run(t2.id, dry_run=True)
    assert preview.events == 7
    assert preview.learners == {"progressed": ["ann", "bob", "cat", "dan"],
                                "awarded": ["ann", "cat"], "revoked": ["cat"]}
    assert (Badge.select().count(), Progress.select().count(),
            OutgoingEvent.select().count()) == before  # the preview wrote nothing
    with pytest.raises(ServiceError, match="is inactive: activate it first"):
        services.backfill.run(t2.id)
    services.templates.set_active(t2.id, True)
    services.intake.ingest_lines(jsonl(course_event("eve", DEMO), course_event("eve", OTHER)),
                                 "live")  # after activation: processed live, never replayed
    done = services.backfill.run(t2.id)
    assert (done.events, done.awarded, done.revoked) == (7, 2, 1)
    assert done.learners == preview.learners
    progress, badges = t2_state()
    assert badges == {"ann": ["awarded"], "cat": ["revoked"], "eve": ["awarded"]}
    assert progress["bob"] == (1, False) and progress["dan"] == (1, False)
    assert progress["cat"] == (1, False) and progress["ann"] == (2, True)
    cat = Badge.select().join(Learner).where((Learner.username == "cat")
                                             & (Badge.template == t2.id)).get()
    assert "penalty" in cat.revoke_reason
    assert {j.state for j in DeliveryJob.select().where(DeliveryJob.badge == cat.id)} == {
        "cancelled"}  # never reached the provider: cancelled, not issued then revoked
    events = [json.loads(o.payload)["user"]["pii"]["username"] for o in OutgoingEvent.select()
              .where(OutgoingEvent.badge.in_([b.id for b in Badge.select().where(
                  Badge.template == t2.id)]))]
    assert sorted(events) == ["ann", "cat", "cat", "eve"]
    again = services.backfill.run(t2.id)
    assert (again.events, again.awarded, again.revoked) == (0, 0, 0)
    assert t2_state() == (progress, badges)


def test_a_backfill_equals_having_had_the_template_active(backend, new_database, clock):
    results = []
    for active_from_start in (True, False):
        url = new_database(f"equal_{active_from_start}")
        services = Services.open(Settings(db=url), clock=clock)
        try:
            services.templates.add_account("credly", CREDLY_ORG, "test-key-1234", name="E")
            account = ProviderAccount.get()
            services.templates.upsert_synced(account, [SyncedTemplate("t1", "T1"),
                                                       SyncedTemplate("t2", "T2")])
            configure(services, lambda *a, **k: None, t2_active=active_from_start)
            services.intake.ingest_lines(jsonl(*HISTORY), "history")
            if not active_from_start:
                t2 = Template.get(Template.external_id == "t2")
                services.templates.set_active(t2.id, True)
                services.backfill.run(t2.id)
            results.append(t2_state())
        finally:
            services.close()
    assert results[0] == results[1]


def test_a_killed_backfill_resumes(services, synced, monkeypatch):
    configure(services, synced, t2_active=False)
    services.intake.ingest_lines(jsonl(*HISTORY), "history")
    t2 = Template.get(Template.external_id == "t2")
    services.templates.set_active(t2.id, True)
    monkeypatch.setattr(backfill_module, "BATCH", 2)

    def kill(done: int, total: int) -> None:
        assert total == 7
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        services.backfill.run(t2.id, on_progress=kill)
    resumed = services.backfill.run(t2.id)
    assert resumed.resumed_after > 0 and resumed.events == 3
    _, badges = t2_state()
    assert badges == {"ann": ["awarded"], "cat": ["revoked"]}


def test_since_and_the_cli(services, synced, db_url, monkeypatch, capsys):
    configure(services, synced, t2_active=False)
    services.intake.ingest_lines(jsonl(*HISTORY), "history")
    services.close()
    monkeypatch.setenv("BADGETUI_DB", db_url)
    assert main(["backfill", "--template", "t2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "preview (dry run: nothing written): template" in out
    assert "2 would complete and be awarded: ann, cat" in out
    assert "1 would be revoked: cat" in out
    late = HISTORY[3]["time"]  # from cat's first event on
    assert main(["backfill", "--template", "t2", "--dry-run", "--since", late, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["events"] == 4 and data["learners"]["awarded"] == ["cat"]
    assert main(["backfill", "--template", "t2"]) == 1
    assert "is inactive: activate it first" in capsys.readouterr().err
    assert main(["backfill", "--template", "t2", "--since", "soon"]) == 1
