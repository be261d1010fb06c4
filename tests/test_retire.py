"""Learner erase (`badgetui learner retire`): real intake for two learners, then one retired.

The checks read every text column of every table straight from the database (SQLite, and
PostgreSQL when BADGETUI_TEST_POSTGRES is set): the old username, emails and names are gone,
the other learner's rows are untouched, every count is unchanged, a second run changes nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import pytest
from peewee import CharField, TextField

from badgetui.cli import learners, main
from badgetui.services import Services
from badgetui.services.common import current_database
from badgetui.services.retire import ERASED, Identity, RetireService, pseudonym
from badgetui.store.models import (
    MODELS,
    AuditLog,
    Badge,
    DeliveryJob,
    IntakeRecord,
    Learner,
    OutgoingEvent,
    Progress,
    Template,
    db,
)
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    jsonl,
    requirement,
    rule,
    table_snapshot,
    template_config,
)

ADA = "ada_lovelace"
ADA_EMAIL = "ada_lovelace@example.org"
ADA_NAME = "Ada Lovelace"
#: What Ada's first event said: the learner row keeps only the latest, the log keeps both.
ADA_OLD_EMAIL = "ada.king@example.org"
ADA_OLD_NAME = "Ada Byrön"
ADA_PII = (ADA, ADA_EMAIL, ADA_NAME, ADA_OLD_EMAIL, ADA_OLD_NAME)
GRACE = "grace_hopper"
GRACE_PII = (GRACE, f"{GRACE}@example.org", "Grace Hopper")


# -- building the world --------------------------------------------------------------------
def event(username: str, course: str, *, email: str, name: str, passing: bool = True,
          event_id: str | None = None, uid: int = 7) -> dict[str, Any]:
    out = course_event(username, course, passing, event_id=event_id, uid=uid)
    out["data"]["course_passing_status"]["user"]["pii"].update(email=email, name=name)
    return out


def ada(course: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("email", ADA_EMAIL)
    kw.setdefault("name", ADA_NAME)
    return event(ADA, course, uid=41, **kw)


def grace(course: str, **kw: Any) -> dict[str, Any]:
    return event(GRACE, course, email=GRACE_PII[1], name=GRACE_PII[2], uid=42, **kw)


def feed(services: Services, *lines: str) -> Any:
    return services.intake.ingest_lines(list(lines), "src")


def build(services: Services, synced: Callable[..., list[str]]) -> dict[str, Any]:
    """Two templates; Ada earns both (one revoked by the operator naming her), Grace one;
    rejected lines of both, a duplicate, provider errors quoting Ada's email. No delivery."""
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", [requirement("demo", rule("is_passing", "true"),
                                           rule("course.course_key", DEMO), group="A")]),
        template_config("t2", [requirement("other", rule("is_passing", "true"),
                                           rule("course.course_key", OTHER), group="A")]),
    ))
    first = ada(DEMO, email=ADA_OLD_EMAIL, name=ADA_OLD_NAME, event_id="ada-1")
    bad_type = ada(DEMO, event_id="ada-bad")
    bad_type["data"]["course_passing_status"]["is_passing"] = "maybe"
    grace_bad = grace(DEMO, event_id="grace-bad")
    grace_bad["data"]["course_passing_status"]["is_passing"] = "perhaps"
    cut = json.dumps(ada(OTHER, event_id="ada-cut"))[:-40]  # a line cut short: not JSON
    report = feed(services, *jsonl(first, grace(DEMO, event_id="grace-1")),
                  *jsonl(ada(OTHER, event_id="ada-2"), bad_type, grace_bad), cut,
                  json.dumps(first))
    assert dict(report.counts) == {"processed": 3, "rejected": 3, "duplicate": 1}
    learner = Learner.get(Learner.username == ADA)
    assert (learner.email, learner.name) == (ADA_EMAIL, ADA_NAME)
    t2 = Badge.select().join(Template).where(
        (Badge.learner == learner.id) & (Template.external_id == "t2")).get()
    services.badges.revoke(t2.id, f"{ADA_NAME} asked for it, see {ADA_EMAIL}.")
    t1 = Badge.get((Badge.learner == learner.id) & (Badge.status == "awarded"))
    Badge.update(last_error=f"Accredible refused: recipient {ADA_EMAIL} bounced").where(
        Badge.id == t1.id).execute()
    DeliveryJob.update(last_error=f"Credly 422: {ADA_EMAIL} is not a valid earner").where(
        (DeliveryJob.badge == t1.id) & (DeliveryJob.kind == "issue")).execute()
    return {"learner": learner.id, "badges": {t1.id, t2.id}, "uuids": {t1.uuid, t2.uuid}}


def ada_rows(world: dict[str, Any]) -> dict[str, set[int]]:
    """Ids of every row that holds Ada's data, found the long way (before retirement)."""
    badges = world["badges"]
    intake = {r.id for r in IntakeRecord.select() if r.username == ADA
              or (r.username is None and ADA in (r.payload or ""))}
    return {
        "learner": {world["learner"]},
        "intake_record": intake,
        "badge": badges,
        "outgoing_event": {o.id for o in OutgoingEvent.select()
                           if o.badge_id in badges},
        "delivery_job": {j.id for j in DeliveryJob.select()
                         if j.badge_id in badges and j.last_error},
        "audit_log": {a.id for a in AuditLog.select() if a.target in world["uuids"]},
    }


def text_columns() -> list[tuple[str, str]]:
    return [(m._meta.table_name, f.column_name) for m in MODELS
            for f in m._meta.sorted_fields if isinstance(f, CharField | TextField)]


def occurrences(values: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(table, column, value) wherever a value appears in any text column, as written or as
    JSON escapes it (case-insensitive)."""
    forms = {v: {v.casefold(), json.dumps(v)[1:-1].casefold()} for v in values}
    found = []
    for table, column in text_columns():
        cursor = current_database().execute_sql(f'SELECT "{column}" FROM "{table}"')
        for (text,) in cursor.fetchall():
            folded = (text or "").casefold()
            found += [(table, column, v) for v, fs in forms.items()
                      if any(f in folded for f in fs)]
    return found


def counts() -> dict[str, int]:
    return {m._meta.table_name: m.select().count() for m in MODELS}


def changed_rows(before: dict[str, list[tuple]], after: dict[str, list[tuple]]
                 ) -> dict[str, set[Any]]:
    out = {}
    for table, rows in after.items():
        old = {row[0]: row for row in before[table]}
        out[table] = {row[0] for row in rows if old.get(row[0]) != row}
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The command as `badgetui` runs it (main's error handling: one line, exit 1)."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli(services: Services, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`badgetui learner ...` on the test's services (its fake clock); the `open_services`
    wiring is checked in its own test."""
    monkeypatch.setattr(learners, "open_services", lambda args: services)
    return lambda *argv: run_cli(["learner", *argv], capsys)


# -- the retirement --------------------------------------------------------------------------
def test_retire_erases_the_learner_everywhere_and_keeps_every_count(services, synced, cli):
    world = build(services, synced)
    mine = ada_rows(world)
    assert len(mine["intake_record"]) == 5  # 2 processed, 1 duplicate, 2 rejected
    assert {r.outcome for r in IntakeRecord.select().where(IntakeRecord.id.in_(
        list(mine["intake_record"])))} == {"processed", "duplicate", "rejected"}
    assert occurrences(ADA_PII) and occurrences(GRACE_PII)
    before, sizes = table_snapshot(), counts()
    grace_before = {(t, c, v) for t, c, v in occurrences(GRACE_PII)}

    code, out, err = cli("retire", ADA)
    alias = pseudonym(ADA)
    assert code == 0
    assert out.splitlines()[0].startswith(f"retired learner as {alias}: learner 1, ")
    assert ADA not in out + err and ADA_EMAIL not in out + err
    assert "1 issue deliveries" in err  # t1's issue is still queued (no delivery ran)

    # Nothing of Ada is left in any text column of any table.
    assert occurrences(ADA_PII) == []
    # Grace is untouched: her values are where they were, her rows unchanged.
    assert {(t, c, v) for t, c, v in occurrences(GRACE_PII)} == grace_before
    after = table_snapshot()
    changed = changed_rows(before, after)
    new_audit = {row[0] for row in after["audit_log"]} - {row[0] for row in before["audit_log"]}
    assert len(new_audit) == 1
    for table, ids in changed.items():
        allowed = mine.get(table, set()) | (new_audit if table == "audit_log" else set())
        assert ids <= allowed, (table, ids - allowed)
    # Counts: nothing deleted, one audit row added.
    assert counts() == {**sizes, "audit_log": sizes["audit_log"] + 1}

    learner = Learner.get_by_id(world["learner"])
    assert (learner.username, learner.email, learner.name, learner.lms_id) == (alias, "", "", 41)
    owned = Badge.select().join(Learner).where(Learner.username == alias)
    assert {b.id for b in owned} == world["badges"]
    assert Progress.select().join(Learner).where(Learner.username == alias).count() == 2
    assert IntakeRecord.select().where(IntakeRecord.username == alias).count() == 3
    # Structure kept: the outbox payloads still decode, with the learner blanked in place.
    for o in OutgoingEvent.select().where(OutgoingEvent.badge.in_(list(world["badges"]))):
        user = json.loads(o.payload)["user"]
        assert user == {"id": 41, "is_active": True,
                        "pii": {"username": alias, "email": "", "name": ""}}
    revoked = Badge.get(Badge.status == "revoked")
    assert revoked.revoke_reason == f"revoked by operator: {ERASED} asked for it, see {ERASED}."
    assert json.loads(revoked.evidence)["revoked"]["reason"].startswith(ERASED)
    # The audit row of the retirement names the pseudonym and nothing else of the learner.
    row = AuditLog.get_by_id(new_audit.pop())
    assert (row.action, row.target) == ("learner.retire", alias)
    assert json.loads(row.detail)["changed"]["intake_record"] == 5


def test_report_counts_rows_per_table_and_a_dry_run_writes_nothing(services, synced):
    world = build(services, synced)
    mine = ada_rows(world)
    before = table_snapshot()
    retire = RetireService(services.clock)
    dry = retire.retire(ADA, dry_run=True)
    assert table_snapshot() == before
    expected = {table: len(ids) for table, ids in mine.items()}
    assert (dry.status, dry.dry_run, dry.changed) == ("retired", True, expected)
    real = retire.retire(ADA)
    assert (real.status, real.dry_run, real.changed) == ("retired", False, expected)
    assert real.pseudonym == pseudonym(ADA) and real.pending_issues == 1
    assert occurrences(ADA_PII) == []


def test_second_run_finds_nothing_to_change(services, synced, cli):
    build(services, synced)
    assert cli("retire", ADA)[0] == 0
    before = table_snapshot()
    code, out, err = cli("retire", ADA)
    assert (code, out, err) == (
        0, f"learner is already retired as {pseudonym(ADA)}: nothing to change\n", "")
    code, out, _ = cli("retire", ADA, "--json")
    data = json.loads(out)
    assert (code, data["status"], data["total"]) == (0, "already retired", 0)
    # Naming the pseudonym itself is the same.
    assert cli("retire", pseudonym(ADA))[:2] == (
        0, f"learner is already retired as {pseudonym(ADA)}: nothing to change\n")
    assert table_snapshot() == before


def test_unknown_username_is_one_line_and_exit_1(services, synced, cli):
    build(services, synced)
    before = table_snapshot()
    code, out, err = cli("retire", "nobody_here")
    assert (code, out) == (1, "")
    assert err == "badgetui: error: no learner 'nobody_here' (nothing to retire)\n"
    assert table_snapshot() == before


def test_dry_run_from_the_command_line(services, synced, cli):
    build(services, synced)
    before = table_snapshot()
    code, out, _ = cli("retire", ADA, "--dry-run", "--json")
    data = json.loads(out)
    assert (code, data["status"], data["dry_run"], data["changed"]["intake_record"]) == (
        0, "retired", True, 5)
    code, out, _ = cli("retire", ADA, "--dry-run")
    assert out.splitlines() == [
        f"would retire learner as {pseudonym(ADA)}: learner 1, intake_record 5, "
        "outgoing_event 3, badge 2, delivery_job 1, audit_log 1",
        "dry run: nothing written"]
    assert table_snapshot() == before


def test_after_retirement_the_old_username_is_a_new_learner(services, synced):
    """Documented behaviour: the username is free again. A replayed event is a duplicate (its
    id stays claimed) whose record quotes the learner: a repeated retire erases it. A new
    event creates a NEW learner, with nothing of the retired one's progress or badges;
    retiring it gives it the next pseudonym."""
    world = build(services, synced)
    retire = RetireService(services.clock)
    retire.retire(ADA)
    alias = pseudonym(ADA)

    replay = feed(services, *jsonl(ada(DEMO, event_id="ada-1")))
    assert dict(replay.counts) == {"duplicate": 1}
    assert Learner.select().where(Learner.username == ADA).count() == 0
    leftovers = retire.retire(ADA)
    assert (leftovers.status, leftovers.pseudonym, leftovers.total) == (
        "already retired", alias, 1)
    assert leftovers.changed["intake_record"] == 1
    assert occurrences(ADA_PII) == []

    fresh = feed(services, *jsonl(ada(DEMO, event_id="ada-new")))
    assert dict(fresh.counts) == {"processed": 1}
    newcomer = Learner.get(Learner.username == ADA)
    assert newcomer.id != world["learner"] and newcomer.email == ADA_EMAIL
    assert Learner.get_by_id(world["learner"]).username == alias  # untouched by the event
    assert Badge.select().where(Badge.learner == world["learner"]).count() == 2
    assert {b.learner_id for b in Badge.select().where(Badge.status == "awarded")} == {
        world["learner"], newcomer.id, Learner.get(Learner.username == GRACE).id}

    again = retire.retire(ADA)
    assert (again.status, again.pseudonym) == ("retired", pseudonym(ADA, 2))
    assert again.changed["learner"] == 1 and again.changed["intake_record"] == 1
    assert occurrences(ADA_PII) == []
    assert Learner.select().where(Learner.username.startswith(alias)).count() == 2
    assert retire.retire(ADA).total == 0


def test_command_opens_services_from_settings(services, synced, db_url, monkeypatch, capsys):
    """The handler as wired: `open_services(args)` from BADGETUI_DB, `RetireService(clock)`."""
    build(services, synced)
    monkeypatch.setenv("BADGETUI_DB", db_url)
    opened: list[Services] = []
    real = learners.open_services

    def spy(args: argparse.Namespace) -> Services:
        opened.append(real(args))
        return opened[-1]

    monkeypatch.setattr(learners, "open_services", spy)
    try:
        code, out, _ = run_cli(["learner", "retire", ADA], capsys)
    finally:
        for other in opened:
            other.close()
        db.initialize(services.database)
    assert len(opened) == 1 and code == 0
    assert out.startswith(f"retired learner as {pseudonym(ADA)}: ")
    assert occurrences(ADA_PII) == []


# -- how texts lose the learner --------------------------------------------------------------
def test_plain_text_is_replaced_token_by_token():
    ident = Identity("ann", "retired__x", ["Ann@Example.org"], ["Ann Lee"])
    assert ident.text("revoked for ann.") == "revoked for retired__x."
    assert ident.text("joanna, ann.smith, ann_b, x.ann, ann-2") == \
        "joanna, ann.smith, ann_b, x.ann, ann-2"
    assert ident.text("mail ANN@example.ORG or ann@example.org.") == \
        f"mail {ERASED} or {ERASED}."
    assert ident.text("Ann Lee said: ann") == f"{ERASED} said: retired__x"
    assert ident.mentions("ann wrote") and not ident.mentions("Ann Lee wrote")


def test_json_values_are_replaced_whole_and_free_text_by_token():
    ident = Identity("ann", "retired__x", ["ann@example.org"], ["Ann Lee"])
    text = json.dumps({
        "user": {"id": 3, "pii": {"username": "ann", "email": "ann.old@example.org",
                                  "name": "Ann Old"}},
        "course": {"display_name": "ann", "course_key": "course-v1:ann+ann_101+2026"},
        "peer": "joanna", "list": ["ann", "anna"], "reason": "ann asked, Ann Lee agreed",
        "note_key": "Ann Lee", "other": "ann asked",
    })
    out = json.loads(ident.stored(text))
    assert out["user"] == {"id": 3, "pii": {"username": "retired__x", "email": "",
                                            "name": ""}}
    assert out["course"] == {"display_name": "retired__x",
                             "course_key": "course-v1:ann+ann_101+2026"}
    assert (out["peer"], out["list"]) == ("joanna", ["retired__x", "anna"])
    assert out["reason"] == f"retired__x asked, {ERASED} agreed"
    assert (out["note_key"], out["other"]) == ("", "ann asked")  # not free text: whole only
    assert ident.emails == {"ann@example.org", "ann.old@example.org"}  # learnt from the pii
    assert ident.stored(ident.stored(text)) == ident.stored(text)  # idempotent
    unchanged = json.dumps({"a": "joanna"}, indent=1)
    assert ident.stored(unchanged) is unchanged  # untouched texts keep their formatting
