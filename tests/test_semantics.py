"""semantics.md, statement by statement, against a real SQLite file.

Every test asserts on what the database holds after intake: badges, progress, fulfillments,
the intake log, delivery jobs and the outbox of badge events.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from peewee import IntegrityError

from badgetui.domain.events import BADGE_AWARDED, BADGE_REVOKED, CCX_COURSE_PASSING
from badgetui.services import Services, processing, queries
from badgetui.services.common import from_db
from badgetui.services.config_io import ConfigImportError
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import (
    Badge,
    DataRule,
    DeliveryJob,
    Fulfillment,
    IntakeRecord,
    Learner,
    OutgoingEvent,
    Progress,
    ProviderAccount,
    Requirement,
    Template,
)
from tests.conftest import CREDLY_ORG, FakeClock
from tests.helpers import (
    DEMO,
    OTHER,
    ccx_event,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    template_config,
)

THIRD = "course-v1:edX+DemoX+THIRD_Course"
CCX1 = "ccx-v1:edX+DemoX+Demo_Course+ccx@1"
CUSTOM = "org.example.custom.thing.v1"

DEMO_PASS = (rule("is_passing", "true"), rule("course.course_key", DEMO))
OTHER_PASS = (rule("is_passing", "true"), rule("course.course_key", OTHER))
DEMO_FAIL = (rule("is_passing", "false"), rule("course.course_key", DEMO))


# -- helpers ---------------------------------------------------------------------------------
def configure(services: Services, synced: Any, *templates: dict[str, Any]) -> None:
    synced(*[t["external_id"] for t in templates])
    services.config.import_text(config_text(*templates))


def feed(services: Services, *events: dict[str, Any]) -> Any:
    return services.intake.ingest_lines(jsonl(*events), "test")


def demo_template(ext: str = "t1", *, with_penalty: bool = True, **kw: Any) -> dict[str, Any]:
    """Group A: pass Demo; group B: pass Other; penalty: failing Demo resets `demo`."""
    pens = [penalty(["demo"], *DEMO_FAIL, description="Failing Demo again")] if with_penalty else []
    return template_config(ext, [
        requirement("demo", *DEMO_PASS, group="A"),
        requirement("other", *OTHER_PASS, group="B"),
    ], pens, **kw)


def single_template(ext: str = "t1", **kw: Any) -> dict[str, Any]:
    """One group (pass Demo) and a penalty for failing Demo."""
    return template_config(ext, [requirement("demo", *DEMO_PASS, group="A")],
                           [penalty(["demo"], *DEMO_FAIL, description="Failing Demo again")], **kw)


def badges(username: str | None = None, ext: str | None = None) -> list[Badge]:
    query = Badge.select().join(Learner).switch(Badge).join(Template).order_by(Badge.id)
    if username is not None:
        query = query.where(Learner.username == username)
    if ext is not None:
        query = query.where(Template.external_id == ext)
    return list(query)


def progress(username: str, ext: str = "t1") -> Progress | None:
    return (
        Progress.select().join(Learner).switch(Progress).join(Template)
        .where((Learner.username == username) & (Template.external_id == ext))
        .first()
    )


def fulfilled(username: str, ext: str = "t1") -> dict[str, str]:
    """{requirement key: event id} of a learner's fulfillments on a template."""
    rows = (
        Fulfillment.select(Requirement.key, Fulfillment.event_id)
        .join(Requirement).switch(Fulfillment).join(Progress).join(Learner)
        .switch(Progress).join(Template)
        .where((Learner.username == username) & (Template.external_id == ext))
        .tuples()
    )
    return dict(rows)


def record(ref_id: str) -> IntakeRecord:
    return IntakeRecord.select().where(IntakeRecord.ref_id == ref_id).order_by(
        IntakeRecord.id.desc()).get()


def outgoing(event_type: str | None = None) -> list[OutgoingEvent]:
    query = OutgoingEvent.select().order_by(OutgoingEvent.id)
    if event_type:
        query = query.where(OutgoingEvent.event_type == event_type)
    return list(query)


def jobs(badge: Badge, kind: str | None = None) -> list[DeliveryJob]:
    query = DeliveryJob.select().where(DeliveryJob.badge == badge.id).order_by(DeliveryJob.id)
    if kind:
        query = query.where(DeliveryJob.kind == kind)
    return list(query)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def simulate_delivered(badge: Badge) -> None:
    """What the delivery worker leaves behind once the issue call reached the provider."""
    DeliveryJob.update(state="done", attempts=1).where(
        (DeliveryJob.badge == badge.id) & (DeliveryJob.kind == "issue")
    ).execute()
    Badge.update(provider_state="pending", external_id="credly-badge-1").where(
        Badge.id == badge.id).execute()


def state_tables() -> dict[str, list[Any]]:
    """Everything intake may change, except the intake log itself."""
    return {
        "learner": list(Learner.select().order_by(Learner.id).tuples()),
        "badge": list(Badge.select().order_by(Badge.id).tuples()),
        "progress": list(Progress.select().order_by(Progress.id).tuples()),
        "fulfillment": list(Fulfillment.select().order_by(Fulfillment.id).tuples()),
        "job": list(DeliveryJob.select().order_by(DeliveryJob.id).tuples()),
        "outbox": list(OutgoingEvent.select().order_by(OutgoingEvent.id).tuples()),
    }


def bring_in(services: Services, *external_ids: str) -> None:
    """What the `synced` fixture does, for a Services object of its own database."""
    account = ProviderAccount.get_or_none(ProviderAccount.identifier == CREDLY_ORG)
    if account is None:
        services.templates.add_account("credly", CREDLY_ORG, "test-key-1234", name="Example")
        account = ProviderAccount.get(ProviderAccount.identifier == CREDLY_ORG)
    services.templates.upsert_synced(
        account, [SyncedTemplate(ext, f"Template {ext}") for ext in external_ids])


# =========================================================================================
# Intake
# =========================================================================================
def test_malformed_line_is_rejected_with_line_number_and_the_rest_goes_on(services, synced):
    configure(services, synced, single_template())
    lines = [
        json.dumps(course_event("ann", DEMO, event_id="i-1")),
        '{"id": "broken", "event_type": ',
        "",
        json.dumps(course_event("bob", DEMO, event_id="i-2")),
    ]
    report = services.intake.ingest_lines(lines, "file.jsonl")
    assert report.counts["processed"] == 2
    assert report.counts["rejected"] == 1
    bad = IntakeRecord.get(IntakeRecord.outcome == "rejected")
    assert bad.line == 2
    assert bad.reason.startswith("not JSON")
    assert bad.source == "file.jsonl"
    assert bad.payload == '{"id": "broken", "event_type": '
    assert [p.line for p in report.problems] == [2]
    assert {b.learner.username for b in badges()} == {"ann", "bob"}
    assert record("i-2").line == 4  # blank lines are skipped but still counted


COURSE_T = "org.openedx.learning.course.passing.status.updated.v1"
_USER7 = {"id": 7, "is_active": True,
          "pii": {"username": "neg", "email": "neg@example.org", "name": "Neg"}}
_COURSE = {"course_key": DEMO}

NEGATIVE = [
    pytest.param(
        {"id": "e1", "event_type": COURSE_T,
         "data": {"course_passing_status": {"is_passing": True, "course": _COURSE}}},
        "dropped", "no user data", id="e1-no-user-data"),
    pytest.param(
        {"id": "e2", "event_type": COURSE_T,
         "data": {"course_passing_status": {
             "is_passing": True, "course": _COURSE,
             "user": {"id": 7, "is_active": True, "pii": {"email": "x@example.org"}}}}},
        "dropped", "no username", id="e2-no-username"),
    pytest.param(
        {"id": "e3", "event_type": "org.openedx.learning.certificate.created.v1",
         "data": {"certificate": {}}},
        "ignored", "event type not configured", id="e3-unconfigured-type"),
    pytest.param(
        '{"id": "e4", "event_type": "' + COURSE_T + '", "data": {',
        "rejected", "not JSON", id="e4-not-json"),
    pytest.param(
        {"id": "e5", "data": {"course_passing_status": {
            "is_passing": True, "course": _COURSE, "user": _USER7}}},
        "rejected", "no event_type", id="e5-no-event-type"),
    pytest.param(
        {"id": "e6", "event_type": COURSE_T, "data": {"badge": {"uuid": "x", "user": _USER7}}},
        "rejected", "data key does not fit the type", id="e6-wrong-data-key"),
    pytest.param(
        {"id": "e7", "event_type": COURSE_T, "data": {"course_passing_status": {
            "is_passing": "yes", "course": _COURSE, "user": _USER7}}},
        "rejected", "is_passing is not a boolean", id="e7-is-passing-yes"),
    pytest.param(
        {"id": "e8", "event_type": COURSE_T, "data": {"course_passing_status": {
            "is_passing": True, "course": {"display_name": "Demo"}, "user": _USER7}}},
        "rejected", "course_key is missing", id="e8-course-key-missing"),
    pytest.param(
        {"id": "e9", "event_type": COURSE_T, "time": "2026-11-01 09:00",
         "data": {"course_passing_status": {
             "is_passing": True, "course": _COURSE, "user": _USER7}}},
        "rejected", "no UTC offset", id="e9-time-without-offset"),
    pytest.param([1, 2, 3], "rejected", "not an object", id="list"),
]


@pytest.mark.parametrize(("line", "outcome", "reason"), NEGATIVE)
def test_negative_examples_of_openedx_events_section_5(services, synced, line, outcome, reason):
    configure(services, synced, template_config("t1", [requirement("any")]))
    text = line if isinstance(line, str) else json.dumps(line)
    before = json.dumps(course_event("ann", DEMO, event_id="ok-before"))
    after = json.dumps(course_event("bob", DEMO, event_id="ok-after"))
    report = services.intake.ingest_lines([before, text, after], "neg.jsonl")

    assert report.counts[outcome] == 1
    assert report.counts["processed"] == 2
    rows = list(IntakeRecord.select().where(IntakeRecord.line == 2))
    assert len(rows) == 1
    row = rows[0]
    assert row.outcome == outcome
    assert reason in row.reason
    assert row.event_id is None  # only a processed event claims its id
    # Nothing of the bad line reached the learners, progress or badges; the rest went on.
    assert {learner.username for learner in Learner.select()} == {"ann", "bob"}
    assert {b.learner.username for b in badges()} == {"ann", "bob"}
    if outcome == "rejected":
        assert [p.line for p in report.problems] == [2]


def test_reasons_are_recorded_for_dropped_and_ignored(services, synced):
    configure(services, synced, single_template())
    no_user = course_event("x", DEMO, event_id="d-1")
    del no_user["data"]["course_passing_status"]["user"]
    other = {"id": "ig-1", "event_type": "org.openedx.learning.certificate.created.v1",
             "data": {"certificate": {}}}
    feed(services, no_user, other)
    assert (record("d-1").outcome, record("d-1").reason) == ("dropped", "no user data")
    assert (record("ig-1").outcome, record("ig-1").reason) == (
        "ignored", "event type not configured")
    assert Learner.select().count() == 0
    assert Progress.select().count() == 0


def test_duplicate_event_id_changes_nothing(services, synced):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="dup-1"))
    before = state_tables()
    # The same id again, even with different content, is a duplicate and changes nothing.
    again = course_event("ann", DEMO, passing=False, event_id="dup-1")
    report = feed(services, again)
    assert report.counts["duplicate"] == 1
    assert report.counts["processed"] == 0
    assert state_tables() == before
    rows = list(IntakeRecord.select().where(IntakeRecord.ref_id == "dup-1")
                .order_by(IntakeRecord.id))
    assert [r.outcome for r in rows] == ["processed", "duplicate"]
    assert rows[1].reason == "already processed"
    assert badges("ann")[0].status == "awarded"


def test_duplicate_within_one_file(services, synced):
    configure(services, synced, single_template())
    event = course_event("ann", DEMO, event_id="dup-2")
    report = feed(services, event, event)
    assert report.counts["processed"] == 1
    assert report.counts["duplicate"] == 1
    assert len(badges()) == 1
    assert len(outgoing(BADGE_AWARDED)) == 1


def test_feeding_the_same_file_twice_changes_nothing(services, synced):
    configure(services, synced, demo_template())
    lines = [*jsonl(
        course_event("ann", DEMO, event_id="f-1"),
        course_event("ann", OTHER, event_id="f-2"),
        course_event("bob", DEMO, event_id="f-3"),
        course_event("ann", DEMO, passing=False, event_id="f-4"),
        course_event("ann", DEMO, event_id="f-5"),
        {k: v for k, v in course_event("cat", OTHER).items() if k != "id"},
    ), "not json"]
    first = services.intake.ingest_lines(lines, "f")
    assert first.counts["processed"] == 6
    before = state_tables()
    second = services.intake.ingest_lines(lines, "f")
    assert second.counts["duplicate"] == 6
    assert second.counts["processed"] == 0
    assert second.awarded == second.revoked == 0
    assert state_tables() == before


def test_event_without_id_gets_a_content_hash_and_refeeding_is_a_duplicate(services, synced):
    configure(services, synced, single_template())
    event = course_event("ann", DEMO)
    del event["id"]
    other = course_event("bob", DEMO)
    del other["id"]
    report = feed(services, event, other)
    assert report.counts["processed"] == 2
    ids = [r.event_id for r in IntakeRecord.select().order_by(IntakeRecord.id)]
    assert all(i.startswith("sha256:") for i in ids)
    assert ids[0] != ids[1]
    assert badges("ann")[0].award_event_id == ids[0]
    report = feed(services, event)
    assert report.counts["duplicate"] == 1
    assert IntakeRecord.select().order_by(IntakeRecord.id.desc()).get().ref_id == ids[0]
    assert len(badges()) == 2


@pytest.mark.parametrize("type_key", ["type", "event_type"])
def test_bus_envelope_is_accepted(services, synced, type_key):
    configure(services, synced, single_template())
    flat = course_event("ann", DEMO)
    envelope = {
        "metadata": {"id": "bus-1", type_key: flat["event_type"], "minorversion": 0,
                     "source": "openedx/lms/web", "sourcehost": "lms-1",
                     "time": "2026-11-03T08:00:00+00:00", "sourcelib": [11, 2, 0]},
        "data": flat["data"],
    }
    report = feed(services, envelope)
    assert report.counts["processed"] == 1
    row = record("bus-1")
    assert (row.outcome, row.event_id, row.username) == ("processed", "bus-1", "ann")
    badge = badges("ann")[0]
    assert badge.award_event_id == "bus-1"
    assert from_db(badge.awarded_at) == utc(2026, 11, 3, 8, 0)
    assert feed(services, envelope).counts["duplicate"] == 1


def test_learner_then_requirements_then_penalties(services, synced):
    """One event that both fulfils a requirement and matches its penalty: the requirement is
    evaluated first (award), then the penalty (revoke)."""
    configure(services, synced, template_config(
        "t1", [requirement("any", group="A")],
        [penalty(["any"], rule("is_passing", "false"), description="fail")]))
    feed(services, course_event("ann", DEMO, passing=False, event_id="o-1"))
    assert Learner.get(Learner.username == "ann").email == "ann@example.org"
    [badge] = badges("ann")
    assert badge.status == "revoked"
    assert badge.award_event_id == badge.revoke_event_id == "o-1"
    assert [e.event_type for e in outgoing()] == [BADGE_AWARDED, BADGE_REVOKED]
    assert [(j.kind, j.state) for j in jobs(badge)] == [("issue", "cancelled")]
    assert fulfilled("ann") == {}
    assert record("o-1").outcome == "processed"


def _fail_intake_write(monkeypatch: pytest.MonkeyPatch, prefix: str) -> Any:
    """Make the intake record of events whose id starts with `prefix` fail to be written.

    The intake records are written last, after the badges, jobs, progress and outbox."""
    real = processing.insert_rows

    def insert_rows(model, fields, rows):
        if model is IntakeRecord and any(str(r[1]).startswith(prefix) for r in rows):
            raise IntegrityError("simulated write failure")
        return real(model, fields, rows)

    monkeypatch.setattr(processing, "insert_rows", insert_rows)
    return real


def test_effects_of_one_event_are_atomic_with_its_intake_record(services, synced, monkeypatch):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="a-1"))
    simulate_delivered(badges("ann")[0])
    before_ann = (fulfilled("ann"), [(b.status, b.revoke_reason) for b in badges("ann")])

    real_insert_rows = _fail_intake_write(monkeypatch, "boom")
    batch = [
        course_event("bob", DEMO, event_id="b-1"),
        course_event("ann", DEMO, passing=False, event_id="boom-revoke"),
        course_event("dan", DEMO, event_id="boom-award"),
        course_event("cat", DEMO, event_id="c-1"),
    ]
    report = feed(services, *batch)
    # The failing events are reported, the others are fully processed.
    assert report.counts["processed"] == 2
    assert report.counts["rejected"] == 2
    assert all("processing failed" in p.reason for p in report.problems)
    assert {b.learner.username for b in badges()} == {"ann", "bob", "cat"}
    # Nothing of the failed events remains: no learner, progress, badge change, job or event.
    assert not Learner.select().where(Learner.username == "dan").exists()
    assert (fulfilled("ann"), [(b.status, b.revoke_reason) for b in badges("ann")]) == before_ann
    assert not DeliveryJob.select().where(DeliveryJob.kind == "revoke").exists()
    assert outgoing(BADGE_REVOKED) == []
    assert len(outgoing(BADGE_AWARDED)) == 3
    assert not IntakeRecord.select().where(IntakeRecord.ref_id.startswith("boom")).exists()

    # Since nothing was recorded, feeding them again processes them for real.
    monkeypatch.setattr(processing, "insert_rows", real_insert_rows)
    report = feed(services, *batch)
    assert report.counts["processed"] == 2
    assert report.counts["duplicate"] == 2
    assert [b.status for b in badges("ann")] == ["revoked"]
    assert [b.status for b in badges("dan")] == ["awarded"]


def test_learner_data_is_kept_up_to_date_from_the_latest_event(services, synced):
    configure(services, synced, single_template())
    first = course_event("ann", DEMO, event_id="l-1")
    feed(services, first)
    learner = Learner.get(Learner.username == "ann")
    assert (learner.email, learner.name, learner.lms_id, learner.is_active) == (
        "ann@example.org", "Ann", 7, True)

    # A later event (matching no requirement at all) brings new user data.
    later = ccx_event("ann", CCX1, DEMO, event_id="l-2")
    later["data"]["course_passing_status"]["user"] = {
        "id": 70, "is_active": False,
        "pii": {"username": "ann", "email": "ann@new.example.org", "name": "Ann Newname"}}
    feed(services, later)
    learner = Learner.get(Learner.username == "ann")
    assert (learner.email, learner.name, learner.lms_id, learner.is_active) == (
        "ann@new.example.org", "Ann Newname", 70, False)
    assert Learner.select().count() == 1

    # In one file the last event wins; a duplicate of an old event changes nothing.
    a = course_event("ann", OTHER, event_id="l-3")
    a["data"]["course_passing_status"]["user"]["pii"]["email"] = "third@example.org"
    b = course_event("ann", THIRD, event_id="l-4")
    b["data"]["course_passing_status"]["user"]["pii"]["email"] = "fourth@example.org"
    feed(services, a, b, first)
    assert record("l-1").outcome == "duplicate"
    assert Learner.get(Learner.username == "ann").email == "fourth@example.org"


# =========================================================================================
# Data rules
# =========================================================================================
def test_paths_start_at_the_payload_object(services, synced):
    configure(services, synced, template_config("t1", [
        requirement("email", rule("user.pii.email", "ann@example.org"),
                    rule("course.course_key", DEMO), rule("is_passing", "true"), group="A"),
        requirement("ccx", rule("course.master_course_key", DEMO), rule("is_passing", "true"),
                    group="B", event_type=CCX_COURSE_PASSING),
    ]))
    feed(services, course_event("ann", DEMO, event_id="p-1"),
         course_event("bob", DEMO, event_id="p-2"),
         ccx_event("ann", CCX1, DEMO, event_id="p-3"))
    assert fulfilled("ann") == {"email": "p-1", "ccx": "p-3"}
    assert fulfilled("bob") == {}
    assert [b.status for b in badges("ann")] == ["awarded"]


@pytest.mark.parametrize(
    ("op", "value", "matches"),
    [
        ("eq", DEMO, True), ("eq", OTHER, False),
        ("=", DEMO, True), ("=", OTHER, False),
        ("ne", OTHER, True), ("ne", DEMO, False),
        ("!=", OTHER, True), ("!=", DEMO, False),
    ],
)
def test_operators_eq_ne_and_aliases(services, synced, op, value, matches):
    configure(services, synced, template_config("t1", [
        requirement("r", rule("course.course_key", value, op=op))]))
    feed(services, course_event("ann", DEMO, event_id="op-1"))
    assert bool(fulfilled("ann")) is matches
    assert len(badges("ann")) == (1 if matches else 0)
    stored = DataRule.get(DataRule.requirement.is_null(False))
    assert stored.op == ("eq" if op in ("eq", "=") else "ne")


def test_extended_operators_are_refused_for_now(services, synced):
    synced("t1")
    with pytest.raises(ConfigImportError):
        services.config.import_text(config_text(template_config("t1", [
            requirement("r", rule("user.id", "5", op="gt"))])))
    assert Requirement.select().count() == 0
    assert not Template.get(Template.external_id == "t1").is_active


@pytest.mark.parametrize(
    ("value", "matches"),
    [("7", True), (7, True), ("07", False), ("7.0", False)],
)
def test_values_compare_as_text(services, synced, value, matches):
    configure(services, synced, template_config("t1", [
        requirement("r", {"path": "user.id", "op": "eq", "value": value})]))
    feed(services, course_event("ann", DEMO, event_id="v-1"))  # user.id is the integer 7
    assert len(badges("ann")) == (1 if matches else 0)


TRUE_WORDS = ["true", "True", "yes", "Yes", "+"]
FALSE_WORDS = ["false", "False", "no", "No", "-"]


@pytest.mark.parametrize("word", TRUE_WORDS + FALSE_WORDS)
def test_boolean_words_in_rules_are_canonical(services, synced, word):
    configure(services, synced, template_config("t1", [
        requirement("r", rule("is_passing", word), rule("course.course_key", DEMO))]))
    feed(services, course_event("passer", DEMO, True, event_id="b-pass"),
         course_event("failer", DEMO, False, event_id="b-fail"))
    expected = "passer" if word in TRUE_WORDS else "failer"
    assert [b.learner.username for b in badges()] == [expected]


@pytest.mark.parametrize(
    ("payload_word", "rule_word", "matches"),
    [("Yes", "true", True), ("+", "yes", True), ("True", "+", True),
     ("-", "No", True), ("no", "false", True), ("False", "-", True),
     ("Yes", "false", False), ("-", "true", False), ("yess", "true", False)],
)
def test_boolean_words_in_payloads_are_canonical(services, synced, payload_word, rule_word,
                                                 matches):
    configure(services, synced, template_config("t1", [
        requirement("r", rule("course.display_name", rule_word))]))
    event = course_event("ann", DEMO, event_id="bw-1")
    event["data"]["course_passing_status"]["course"]["display_name"] = payload_word
    feed(services, event)
    assert len(badges("ann")) == (1 if matches else 0)


@pytest.mark.parametrize("op", ["eq", "ne"])
@pytest.mark.parametrize("value", ["None", "null", "x", ""])
def test_a_null_path_never_matches(services, synced, op, value):
    configure(services, synced, template_config("t1", [
        requirement("r", rule("course.start", value, op=op))]))
    feed(services, course_event("ann", DEMO, event_id="n-1"))  # course.start is null
    assert record("n-1").outcome == "processed"
    assert progress("ann") is None
    assert badges() == []


def test_ne_on_a_present_value_matches(services, synced):
    # The contrast to the null case: an empty string is a value.
    configure(services, synced, template_config("t1", [
        requirement("r", rule("course.display_name", "x", op="ne"))]))
    feed(services, course_event("ann", DEMO, event_id="n-2"))
    assert len(badges("ann")) == 1


def _custom(username: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "event_type": CUSTOM, "time": "2026-11-01T09:00:00+00:00",
            "data": {"thing": {"user": {"id": 1, "is_active": True,
                                        "pii": {"username": username,
                                                "email": f"{username}@example.org"}},
                               **fields}}}


@pytest.mark.parametrize(
    ("path", "op", "matches"),
    [("grade", "ne", False), ("grade", "eq", False),
     ("score.value", "ne", False), ("score", "ne", True), ("level", "ne", False),
     ("user.pii.username.deeper", "ne", False)],
)
def test_a_missing_path_never_matches(make_services, path, op, matches):
    services = make_services(events=(COURSE_T, CCX_COURSE_PASSING, CUSTOM))
    bring_in(services, "t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("r", rule(path, "A", op=op), event_type=CUSTOM)])))
    # `grade` is absent, `score` is "10", `level` is null.
    report = services.intake.ingest_lines(jsonl(_custom("ann", "m-1", score="10", level=None)),
                                          "t")
    assert report.counts["processed"] == 1
    assert len(badges("ann")) == (1 if matches else 0)


def test_a_requirement_matches_only_when_all_its_rules_match(services, synced):
    configure(services, synced, template_config("t1", [
        requirement("r", rule("is_passing", "true"), rule("course.course_key", DEMO),
                    rule("user.pii.email", "bob@example.org"))]))
    feed(services, course_event("ann", DEMO, event_id="all-1"),
         course_event("bob", OTHER, event_id="all-2"),
         course_event("bob", DEMO, False, event_id="all-3"))
    assert badges() == []
    assert Progress.select().count() == 0
    feed(services, course_event("bob", DEMO, event_id="all-4"))
    assert [(b.learner.username, b.award_event_id) for b in badges()] == [("bob", "all-4")]


def test_a_requirement_without_rules_matches_every_event_of_its_type(services, synced):
    configure(services, synced, template_config("t1", [requirement("any")]))
    feed(services, course_event("ann", DEMO, True, event_id="any-1"),
         course_event("bob", OTHER, False, event_id="any-2"),
         ccx_event("cat", CCX1, DEMO, event_id="any-3"))
    assert {b.learner.username: b.award_event_id for b in badges()} == {
        "ann": "any-1", "bob": "any-2"}
    assert progress("cat") is None


def test_penalties_use_the_same_rule_evaluation(services, synced):
    configure(services, synced, template_config(
        "t1", [requirement("demo", *DEMO_PASS)],
        [penalty(["demo"], rule("is_passing", "No", op="="), rule("course.course_key", OTHER, "!="),
                 rule("course.start", "x", "ne"), description="null start")],
    ), template_config(
        "t2", [requirement("demo", *DEMO_PASS)],
        [penalty(["demo"], rule("is_passing", "-", op="="), rule("course.course_key", OTHER, "!="),
                 description="words")],
    ))
    feed(services, course_event("ann", DEMO, event_id="pr-1"),
         course_event("ann", DEMO, False, event_id="pr-2"))
    # t1's penalty has a rule on a null path: it never fires. t2's does.
    assert [b.status for b in badges("ann", "t1")] == ["awarded"]
    assert [b.status for b in badges("ann", "t2")] == ["revoked"]


def test_a_penalty_without_rules_fires_on_every_event_of_its_type_and_lint_warns(
        services, synced):
    synced("t1")
    plan = services.config.import_text(config_text(template_config(
        "t1", [requirement("demo", *DEMO_PASS)],
        [penalty(["demo"], event_type=CCX_COURSE_PASSING, description="any ccx")])))
    assert any("has no rules" in w for w in plan.warnings)
    assert any("has no rules" in str(f) and f.level == "warning"
               for f in services.config.lint())
    feed(services, course_event("ann", DEMO, event_id="nr-1"),
         course_event("ann", OTHER, False, event_id="nr-2"))  # not the penalty's type
    assert [b.status for b in badges("ann")] == ["awarded"]
    feed(services, ccx_event("ann", "ccx-v1:x+y+z+ccx@9", OTHER, True, event_id="nr-3"))
    assert [b.status for b in badges("ann")] == ["revoked"]
    assert badges("ann")[0].revoke_event_id == "nr-3"


# =========================================================================================
# Progress and awarding
# =========================================================================================
def test_groups_or_within_and_across_and_ratio(services, synced):
    configure(services, synced, template_config("t1", [
        requirement("demo", *DEMO_PASS, group="A"),
        requirement("other", *OTHER_PASS, group="A"),
        requirement("third", rule("course.course_key", THIRD), group="B"),
        requirement("ccx", rule("is_passing", "true"), group="C",
                    event_type=CCX_COURSE_PASSING),
    ]))

    def view():
        [v] = queries.list_progress(learner="ann")
        return v.fulfilled_groups, v.total_groups, v.complete, v.holds_badge

    feed(services, course_event("ann", DEMO, event_id="g-1"))
    assert view() == (1, 3, False, False)
    feed(services, course_event("ann", OTHER, event_id="g-2"))  # same group: still 1 of 3
    assert view() == (1, 3, False, False)
    assert fulfilled("ann") == {"demo": "g-1", "other": "g-2"}
    feed(services, course_event("ann", THIRD, False, event_id="g-3"))
    assert view() == (2, 3, False, False)
    assert badges() == []
    feed(services, ccx_event("ann", CCX1, DEMO, event_id="g-4"))
    assert view() == (3, 3, True, True)
    assert [b.award_event_id for b in badges("ann")] == ["g-4"]


def test_award_only_at_ratio_one(services, synced):
    configure(services, synced, demo_template(with_penalty=False))
    feed(services, course_event("ann", DEMO, event_id="r1-1"),
         course_event("ann", DEMO, event_id="r1-2"),
         course_event("ann", OTHER, False, event_id="r1-3"))
    assert badges() == []
    assert progress("ann").fulfilled_groups == 1
    assert not progress("ann").complete
    assert outgoing() == []
    assert DeliveryJob.select().count() == 0


def test_one_event_can_advance_several_templates(services, synced):
    configure(services, synced, single_template("t1"), demo_template("t2"),
              template_config("t3", [requirement("any")]))
    feed(services, course_event("ann", DEMO, event_id="m-1"))
    assert {b.template.external_id for b in badges("ann")} == {"t1", "t3"}
    assert fulfilled("ann", "t2") == {"demo": "m-1"}


def test_a_fulfilled_requirement_keeps_the_event_that_fulfilled_it(services, synced):
    configure(services, synced, demo_template(with_penalty=False))
    event = course_event("ann", DEMO, event_id="k-1", seconds=100)
    feed(services, event, course_event("ann", DEMO, event_id="k-2", seconds=200))
    assert fulfilled("ann") == {"demo": "k-1"}
    assert from_db(Fulfillment.get().event_time) == utc(2026, 11, 1, 9, 1, 40)


def test_a_held_badge_is_not_re_evaluated(services, synced):
    configure(services, synced, template_config("t1", [
        requirement("demo", *DEMO_PASS, group="A"),
        requirement("other", *OTHER_PASS, group="A"),
    ]))
    feed(services, course_event("ann", DEMO, event_id="h-1"))
    assert fulfilled("ann") == {"demo": "h-1"}
    report = feed(services, course_event("ann", OTHER, event_id="h-2"),
                  course_event("ann", DEMO, event_id="h-3"))
    assert report.counts["processed"] == 2
    assert fulfilled("ann") == {"demo": "h-1"}
    assert record("h-2").effects == ""
    assert len(badges("ann")) == 1
    assert len(outgoing(BADGE_AWARDED)) == 1


def test_award_creates_badge_outgoing_event_and_issue_job(services, synced):
    configure(services, synced, single_template())
    report = feed(services, course_event("ann", DEMO, event_id="aw-1"))
    assert report.awarded == 1
    [badge] = badges("ann")
    tpl = Template.get(Template.external_id == "t1")
    assert badge.status == "awarded"
    assert badge.provider_state == "created"
    assert badge.external_id is None
    assert badge.template_id == tpl.id
    assert badge.award_event_id == "aw-1"
    assert progress("ann").badge_id == badge.id
    assert progress("ann").complete

    [job] = jobs(badge)
    assert (job.kind, job.state, job.account_id) == ("issue", "queued", tpl.account_id)
    assert queries.queue_depth() == 1

    [event] = outgoing()
    assert event.event_type == BADGE_AWARDED
    assert event.badge_id == badge.id
    payload = json.loads(event.payload)
    assert payload["uuid"] == badge.uuid
    assert payload["user"]["pii"]["username"] == "ann"
    assert payload["user"]["id"] == 7
    assert payload["template"]["uuid"] == "t1"
    assert payload["template"]["origin"] == "credly"
    assert "awarded badge " + badge.uuid in record("aw-1").effects


def test_award_time_is_the_event_time(services, synced, clock):
    configure(services, synced, single_template())
    event = course_event("ann", DEMO, event_id="at-1")
    event["time"] = "2026-11-05T10:30:00+02:00"
    feed(services, event)
    [badge] = badges("ann")
    assert from_db(badge.awarded_at) == utc(2026, 11, 5, 8, 30)
    assert from_db(badge.awarded_at) != clock()
    assert from_db(OutgoingEvent.get().time) == utc(2026, 11, 5, 8, 30)

    # Without a time, the intake time is the event time.
    untimed = course_event("bob", DEMO, event_id="at-2")
    del untimed["time"]
    feed(services, untimed)
    assert from_db(badges("bob")[0].awarded_at) == clock()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-11-02T09:00:00Z", utc(2026, 11, 2, 9, 0)),
     ("2026-11-02T09:00:00.250000+00:00", datetime(2026, 11, 2, 9, 0, 0, 250000, tzinfo=UTC)),
     ("2026-11-02T04:00:00-05:00", utc(2026, 11, 2, 9, 0))],
)
def test_event_times_with_an_offset_are_stored_as_utc(services, synced, text, expected):
    configure(services, synced, single_template())
    event = course_event("ann", DEMO, event_id="tz-1")
    event["time"] = text
    feed(services, event)
    assert from_db(record("tz-1").event_time) == expected
    assert from_db(badges("ann")[0].awarded_at) == expected


def test_inactive_templates_are_ignored_entirely(services, synced):
    configure(services, synced, single_template("t1", active=False),
              template_config("t2", [requirement("any")], active=False))
    report = feed(services, course_event("ann", DEMO, event_id="in-1"),
                  course_event("ann", DEMO, False, event_id="in-2"))
    assert report.counts["processed"] == 2
    assert Progress.select().count() == 0
    assert Fulfillment.select().count() == 0
    assert badges() == []
    assert record("in-1").effects == record("in-2").effects == ""


def test_deactivating_keeps_issued_badges(services, synced):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="de-1"))
    services.templates.set_active("t1", False)
    [badge] = badges("ann")
    assert badge.status == "awarded"
    # The penalty of an inactive template does not fire either.
    feed(services, course_event("ann", DEMO, False, event_id="de-2"))
    assert [b.status for b in badges("ann")] == ["awarded"]
    assert fulfilled("ann") == {"demo": "de-1"}
    assert DeliveryJob.select().where(DeliveryJob.kind == "revoke").count() == 0
    assert [v.awarded for v in services.templates.list()] == [1]


def test_activating_affects_new_events_only(services, synced):
    configure(services, synced, single_template(active=False))
    feed(services, course_event("ann", DEMO, event_id="ac-1"))
    services.config.import_text(config_text(single_template(active=True)))
    assert badges() == []
    assert Progress.select().count() == 0
    # Feeding the old event again is a duplicate: no backfill happens implicitly.
    assert feed(services, course_event("ann", DEMO, event_id="ac-1")).counts["duplicate"] == 1
    assert badges() == []
    feed(services, course_event("bob", DEMO, event_id="ac-2"))
    assert [b.learner.username for b in badges()] == ["bob"]


def test_why_names_the_fulfilling_events(services, synced):
    configure(services, synced, demo_template())
    feed(services, course_event("ann", DEMO, event_id="why-a"),
         course_event("ann", OTHER, event_id="why-b"))
    [badge] = badges("ann")
    answer = queries.why(badge.id)
    assert answer["badge"]["uuid"] == badge.uuid
    assert answer["awarded"]["event_id"] == "why-b"
    by_req = {r["id"]: r for r in answer["awarded"]["requirements"]}
    assert {k: r["event_id"] for k, r in by_req.items()} == {"demo": "why-a", "other": "why-b"}
    assert by_req["demo"]["group"] == "A"
    assert f"course.course_key eq {DEMO!r}" in by_req["demo"]["rules"]
    assert queries.why(badge.uuid)["awarded"] == answer["awarded"]

    feed(services, course_event("ann", DEMO, False, event_id="why-c"))
    revoked = queries.why(badge.id)["revoked"]
    assert revoked["event_id"] == "why-c"
    assert revoked["penalty"] == "Failing Demo again"
    assert revoked["reset"] == ["demo"]


# =========================================================================================
# Penalties and revocation
# =========================================================================================
def test_penalty_resets_only_its_requirements_for_that_learner(services, synced):
    configure(services, synced, demo_template())
    feed(services, course_event("ann", DEMO, event_id="pe-1"),
         course_event("ann", THIRD, event_id="pe-0"),
         course_event("bob", DEMO, event_id="pe-2"),
         course_event("bob", OTHER, event_id="pe-3"),
         course_event("cat", OTHER, event_id="pe-4"))
    assert fulfilled("ann") == {"demo": "pe-1"}
    feed(services, course_event("ann", DEMO, False, event_id="pe-5"),
         course_event("cat", DEMO, False, event_id="pe-6"))
    assert fulfilled("ann") == {}
    assert progress("ann").fulfilled_groups == 0
    assert fulfilled("cat") == {"other": "pe-4"}  # other requirements are kept
    assert progress("cat").fulfilled_groups == 1
    assert fulfilled("bob") == {"demo": "pe-2", "other": "pe-3"}
    assert [b.status for b in badges("bob")] == ["awarded"]
    assert "penalty \"Failing Demo again\" reset demo" in record("pe-5").effects


def test_no_revoke_while_progress_stays_complete(services, synced):
    configure(services, synced, template_config("t1", [
        requirement("demo", *DEMO_PASS, group="A"),
        requirement("other", *OTHER_PASS, group="A"),
        requirement("third", rule("course.course_key", THIRD), group="B"),
    ], [penalty(["demo"], *DEMO_FAIL, description="Failing Demo again")]))
    feed(services, course_event("ann", DEMO, event_id="sc-1"),
         course_event("ann", OTHER, event_id="sc-2"),
         course_event("ann", THIRD, event_id="sc-3"))
    assert [b.status for b in badges("ann")] == ["awarded"]
    report = feed(services, course_event("ann", DEMO, False, event_id="sc-4"))
    # Group A is still fulfilled by `other`: the progress is complete, the badge stays.
    assert report.revoked == 0
    assert fulfilled("ann") == {"other": "sc-2", "third": "sc-3"}
    assert progress("ann").complete
    assert [b.status for b in badges("ann")] == ["awarded"]
    assert outgoing(BADGE_REVOKED) == []


def test_a_penalty_of_another_event_type_does_not_fire(services, synced):
    configure(services, synced, template_config(
        "t1", [requirement("demo", *DEMO_PASS)],
        [penalty(["demo"], rule("is_passing", "false"), event_type=CCX_COURSE_PASSING)]))
    feed(services, course_event("ann", DEMO, event_id="ot-1"),
         course_event("ann", DEMO, False, event_id="ot-2"))
    assert [b.status for b in badges("ann")] == ["awarded"]
    feed(services, ccx_event("ann", CCX1, DEMO, False, event_id="ot-3"))
    assert [b.status for b in badges("ann")] == ["revoked"]


def test_revoking_a_delivered_badge(services, synced):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="rv-1"))
    [badge] = badges("ann")
    simulate_delivered(badge)
    event = course_event("ann", DEMO, False, event_id="rv-2")
    event["time"] = "2026-11-07T15:00:00+00:00"
    report = feed(services, event)
    assert report.revoked == 1

    [badge] = badges("ann")
    assert badge.status == "revoked"
    assert badge.revoke_event_id == "rv-2"
    assert "Failing Demo again" in badge.revoke_reason
    assert "rv-2" in badge.revoke_reason
    assert from_db(badge.revoked_at) == utc(2026, 11, 7, 15, 0)
    assert f"revoked badge {badge.uuid}" in record("rv-2").effects
    assert badge.external_id == "credly-badge-1"
    assert badge.provider_state == "pending"  # until the revoke reaches the provider
    assert progress("ann").badge_id is None
    assert not progress("ann").complete

    assert [(j.kind, j.state) for j in jobs(badge)] == [("issue", "done"), ("revoke", "queued")]
    tpl = Template.get(Template.external_id == "t1")
    assert jobs(badge, "revoke")[0].account_id == tpl.account_id

    [awarded] = outgoing(BADGE_AWARDED)
    [revoked] = outgoing(BADGE_REVOKED)
    assert revoked.badge_id == badge.id
    assert json.loads(revoked.payload)["uuid"] == json.loads(awarded.payload)["uuid"] == badge.uuid
    assert from_db(revoked.time) == utc(2026, 11, 7, 15, 0)


def test_revoke_before_delivery_cancels_the_issue_job(services, synced):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="cx-1"))
    [badge] = badges("ann")
    assert [(j.kind, j.state) for j in jobs(badge)] == [("issue", "queued")]
    feed(services, course_event("ann", DEMO, False, event_id="cx-2"))
    [badge] = badges("ann")
    assert badge.status == "revoked"
    assert "cx-2" in badge.revoke_reason
    assert [(j.kind, j.state) for j in jobs(badge)] == [("issue", "cancelled")]
    assert DeliveryJob.select().where(DeliveryJob.kind == "revoke").count() == 0
    assert queries.queue_depth() == 0
    assert [e.event_type for e in outgoing()] == [BADGE_AWARDED, BADGE_REVOKED]


def test_penalty_on_partial_progress_only_resets_progress(services, synced):
    configure(services, synced, demo_template())
    feed(services, course_event("ann", DEMO, event_id="pp-1"))
    report = feed(services, course_event("ann", DEMO, False, event_id="pp-2"))
    assert report.revoked == 0
    assert fulfilled("ann") == {}
    assert badges() == []
    assert outgoing() == []
    assert DeliveryJob.select().count() == 0


def test_a_revoked_badge_can_be_earned_again(services, synced):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="re-1"))
    simulate_delivered(badges("ann")[0])
    feed(services, course_event("ann", DEMO, False, event_id="re-2"))
    report = feed(services, course_event("ann", DEMO, event_id="re-3"))
    assert report.awarded == 1

    old, new = badges("ann")
    assert (old.status, old.award_event_id, old.revoke_event_id) == ("revoked", "re-1", "re-2")
    assert (new.status, new.award_event_id, new.provider_state) == ("awarded", "re-3", "created")
    assert new.uuid != old.uuid
    assert progress("ann").badge_id == new.id
    assert Progress.select().count() == 1  # still one progress row per learner and template
    assert [(j.kind, j.state) for j in jobs(new)] == [("issue", "queued")]
    assert DeliveryJob.select().where(DeliveryJob.kind == "issue").count() == 2
    assert [json.loads(e.payload)["uuid"] for e in outgoing(BADGE_AWARDED)] == [old.uuid, new.uuid]
    assert len(outgoing(BADGE_REVOKED)) == 1


def test_never_reaward_setting_keeps_the_stricter_behaviour(make_services, synced):
    services = make_services(reaward_after_revoke=False)
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="nv-1"))
    feed(services, course_event("ann", DEMO, False, event_id="nv-2"))
    report = feed(services, course_event("ann", DEMO, event_id="nv-3"))
    assert report.awarded == 0
    assert [b.status for b in badges("ann")] == ["revoked"]
    assert DeliveryJob.select().where(DeliveryJob.kind == "issue").count() == 1
    assert len(outgoing(BADGE_AWARDED)) == 1
    # Other learners are still awarded as usual.
    feed(services, course_event("bob", DEMO, event_id="nv-4"))
    assert [b.status for b in badges("bob")] == ["awarded"]


def test_never_reaward_setting_holds_within_one_batch(make_services, synced):
    services = make_services(reaward_after_revoke=False)
    configure(services, synced, single_template())
    feed(services, course_event("bob", DEMO, event_id="nb-0"))
    feed(services,
         course_event("ann", DEMO, event_id="nb-1"),
         course_event("ann", DEMO, False, event_id="nb-2"),
         course_event("ann", DEMO, event_id="nb-3"),
         course_event("bob", DEMO, False, event_id="nb-4"),
         course_event("bob", DEMO, event_id="nb-5"))
    assert [b.status for b in badges("ann")] == ["revoked"]
    assert [b.status for b in badges("bob")] == ["revoked"]


# =========================================================================================
# Where the Open edX Credentials code differs (processing rows)
# =========================================================================================
def test_differs_awards_only_at_ratio_one(services, synced):
    configure(services, synced, demo_template(with_penalty=False))
    feed(services, course_event("ann", DEMO, event_id="d1-1"))
    assert badges() == []
    assert outgoing() == []
    feed(services, course_event("ann", OTHER, event_id="d1-2"))
    assert [(b.status, b.award_event_id) for b in badges("ann")] == [("awarded", "d1-2")]


def test_differs_rule_less_requirement_matches_every_event_of_its_type(services, synced):
    configure(services, synced, template_config("t1", [requirement("grade-update")]))
    feed(services, course_event("ann", OTHER, False, event_id="d2-1"))
    assert [(b.status, b.award_event_id) for b in badges("ann")] == [("awarded", "d2-1")]


def test_differs_penalty_on_partial_progress_only_resets(services, synced):
    configure(services, synced, demo_template())
    feed(services, course_event("ann", DEMO, event_id="d3-1"),
         course_event("ann", DEMO, False, event_id="d3-2"))
    assert progress("ann").fulfilled_groups == 0
    assert Badge.select().where(Badge.status == "revoked").count() == 0
    assert outgoing(BADGE_REVOKED) == []


def test_differs_passing_again_after_revoke_reawards_a_new_badge(services, synced):
    configure(services, synced, single_template())
    feed(services, course_event("ann", DEMO, event_id="d4-1"),
         course_event("ann", DEMO, False, event_id="d4-2"),
         course_event("ann", DEMO, event_id="d4-3"))
    rows = badges("ann")
    assert [b.status for b in rows] == ["revoked", "awarded"]
    issue_jobs = [j for b in rows for j in jobs(b, "issue")]
    assert len(issue_jobs) == 2
    assert issue_jobs[1].state == "queued"
    assert issue_jobs[1].badge_id == rows[1].id


def test_differs_ne_on_missing_or_null_path_does_not_match(services, synced):
    configure(services, synced, template_config("t1", [
        requirement("r", rule("is_passing", "true"),
                    rule("course.end", "2020-01-01T00:00:00+00:00", op="ne"))]))
    feed(services, course_event("ann", DEMO, event_id="d5-1"))
    assert badges() == []
    assert progress("ann") is None


def test_differs_duplicate_events_are_not_processed_again(services, synced):
    configure(services, synced, single_template())
    fail = course_event("ann", DEMO, False, event_id="d6-2")
    feed(services, course_event("ann", DEMO, event_id="d6-1"), fail,
         course_event("ann", DEMO, event_id="d6-3"))
    before = state_tables()
    report = feed(services, fail)
    assert report.counts["duplicate"] == 1
    assert record("d6-2").outcome == "duplicate"
    assert state_tables() == before
    assert [b.status for b in badges("ann")] == ["revoked", "awarded"]


def test_differs_award_time_is_the_event_time(services, synced, clock):
    configure(services, synced, single_template())
    event = course_event("ann", DEMO, event_id="d7-1")
    event["time"] = "2025-03-04T05:06:07.123456+00:00"
    feed(services, event)
    awarded = from_db(badges("ann")[0].awarded_at)
    assert awarded == datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert awarded != clock()


# =========================================================================================
# Batching gives the result of one event at a time
# =========================================================================================
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _stream() -> list[str]:
    ccx_fail = ccx_event("bob", CCX1, DEMO, False, event_id="s-10")
    no_user = course_event("x", DEMO, event_id="s-8")
    del no_user["data"]["course_passing_status"]["user"]
    no_id = course_event("cat", DEMO, event_id="s-13")
    del no_id["id"]
    changed = course_event("ann", DEMO, False, event_id="s-15")
    changed["data"]["course_passing_status"]["user"]["pii"]["email"] = "ann@new.example.org"
    untimed = course_event("dan", OTHER, event_id="s-17")
    del untimed["time"]
    events = [
        course_event("ann", DEMO, event_id="s-1"),
        course_event("ann", OTHER, event_id="s-2"),
        course_event("bob", DEMO, event_id="s-3"),
        course_event("ann", DEMO, False, event_id="s-4"),
        course_event("ann", DEMO, event_id="s-5"),
        course_event("bob", DEMO, event_id="s-3"),
        no_user,
        {"id": "s-9", "event_type": "org.openedx.learning.certificate.created.v1", "data": {}},
        ccx_fail,
        course_event("cat", OTHER, event_id="s-11"),
        course_event("bob", OTHER, event_id="s-12"),
        no_id,
        no_id,
        changed,
        course_event("ann", DEMO, event_id="s-16"),
        untimed,
        ccx_event("cat", CCX1, DEMO, False, event_id="s-18"),
        course_event("cat", DEMO, False, event_id="s-19"),
    ]
    lines = jsonl(*events)
    lines.insert(7, "this is not json")
    return lines


def _snapshot() -> dict[str, Any]:
    def badge_key(badge_id: int | None) -> Any:
        if badge_id is None:
            return None
        b = Badge.get_by_id(badge_id)
        return (b.learner.username, b.template.external_id, b.award_event_id)

    def t(value: Any) -> Any:
        return from_db(value)

    return {
        "learners": sorted(
            (r.username, r.email, r.name, r.lms_id, r.is_active) for r in Learner.select()),
        "badges": sorted(
            (badge_key(b.id), b.status, b.provider_state, t(b.awarded_at), t(b.revoked_at),
             b.revoke_event_id, b.revoke_reason) for b in Badge.select()),
        "progress": sorted(
            (p.learner.username, p.template.external_id, p.fulfilled_groups, p.complete,
             badge_key(p.badge_id)) for p in Progress.select()),
        "fulfillments": sorted(
            (f.progress.learner.username, f.requirement.key, f.event_id, t(f.event_time))
            for f in Fulfillment.select()),
        "jobs": sorted((badge_key(j.badge_id), j.kind, j.state) for j in DeliveryJob.select()),
        "outbox": sorted(
            (e.event_type, badge_key(e.badge_id), t(e.time),
             _UUID.sub("<uuid>", e.payload)) for e in OutgoingEvent.select()),
        "intake": [
            (r.ref_id, r.event_id, r.outcome, r.reason, r.line, r.username, t(r.event_time),
             _UUID.sub("<uuid>", r.effects))
            for r in IntakeRecord.select().order_by(IntakeRecord.id)],
    }


def _run_stream(url: str, clock: FakeClock, lines: list[str], **settings: Any) -> Any:
    services = Services.open(Settings(db=url, **settings), clock=clock)
    try:
        bring_in(services, "t1", "t2", "t3")
        services.config.import_text(config_text(
            demo_template("t1"),
            template_config("t2", [requirement("any", group="A")],
                            [penalty(["any"], rule("is_passing", "false"),
                                     event_type=CCX_COURSE_PASSING, description="ccx fail")]),
            single_template("t3"),
        ))
        report = services.intake.ingest_lines(lines, "stream")
        return report.as_dict(), _snapshot()
    finally:
        services.close()


@pytest.mark.parametrize("reaward", [True, False])
def test_batch_size_does_not_change_the_result(new_database, clock, reaward):
    lines = _stream()
    one_report, one = _run_stream(new_database("one"), clock, lines, batch_size=1,
                                  reaward_after_revoke=reaward)
    big_report, big = _run_stream(new_database("big"), clock, lines, batch_size=500,
                                  reaward_after_revoke=reaward)
    odd_report, odd = _run_stream(new_database("odd"), clock, lines, batch_size=4,
                                  reaward_after_revoke=reaward)
    assert one_report == big_report == odd_report
    for key in one:
        assert one[key] == big[key], key
        assert one[key] == odd[key], key
    # The stream did real work: awards, revocations, a re-award, every outcome.
    assert one_report["processed"] == 14
    assert one_report["duplicate"] == 2
    assert (one_report["dropped"], one_report["ignored"], one_report["rejected"]) == (1, 1, 1)
    statuses = [b[1] for b in one["badges"]]
    assert "revoked" in statuses
    assert "awarded" in statuses
    ann_t3 = [b for b in one["badges"] if b[0][:2] == ("ann", "t3")]
    assert len(ann_t3) == (3 if reaward else 1)


def test_batch_size_one_via_make_services(make_services, synced):
    services = make_services(batch_size=1)
    configure(services, synced, demo_template())
    report = feed(services, course_event("ann", DEMO, event_id="bs-1"),
                  course_event("ann", OTHER, event_id="bs-2"),
                  course_event("ann", DEMO, False, event_id="bs-3"),
                  course_event("ann", DEMO, event_id="bs-4"))
    assert report.as_dict()["processed"] == 4
    assert (report.awarded, report.revoked) == (2, 1)
    assert [b.status for b in badges("ann")] == ["revoked", "awarded"]
    assert [(j.kind, j.state) for b in badges("ann") for j in jobs(b)] == [
        ("issue", "cancelled"), ("issue", "queued")]


def test_copy_of_events_is_not_mutated_by_intake(services, synced):
    # Guard for the tests above, which reuse event dicts: intake never mutates its input.
    configure(services, synced, single_template())
    event = course_event("ann", DEMO, event_id="cp-1")
    snapshot = copy.deepcopy(event)
    services.intake.ingest_objects([event], "objects")
    assert event == snapshot
    assert [b.award_event_id for b in badges("ann")] == ["cp-1"]
