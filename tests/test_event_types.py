"""Every openedx-events signal that carries user data works end to end: a real-shaped payload
(the attrs classes of openedx_events/learning/data.py, serialized as the event bus does) goes
through JSON intake and through the Redis consumer, fulfils a requirement whose rule reads a
field of that type, and credits the learner, never the staff member some payloads also name
(`created_by`, `requesting_user`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from badgetui.domain import avro
from badgetui.domain.event_records import EVENT_SPECS, SELF
from badgetui.domain.events import parse_object
from badgetui.services.bus import BusConsumer
from badgetui.services.config_io import ConfigImportError
from badgetui.store.models import Badge, IntakeRecord
from tests.bus_helpers import bus_config, bus_env, consumer_process, entry, redis_or_skip
from tests.helpers import DEMO, config_text, requirement, rule, template_config
from tests.test_bus import FIXTURES

ALL_TYPES = sorted(EVENT_SPECS)
T = "org.openedx.learning."
STAFF = {"id": 3, "is_active": True,
         "pii": {"username": "staff", "email": "staff@example.org", "name": "Course Staff"}}
COURSE = {"course_key": DEMO, "display_name": "Demo Course", "start": "2026-09-01T00:00:00+00:00",
          "end": None}
UNIT = "block-v1:edX+DemoX+Demo_Course+type@sequential+block@exam1"


def learner(name: str, uid: int) -> dict[str, Any]:
    return {"id": uid, "is_active": True,
            "pii": {"username": name, "email": f"{name}@example.org", "name": name.title()}}


def record(event_type: str, user: dict[str, Any], matching: bool) -> dict[str, Any]:
    """The payload of one event (the data key's record) and whether it meets `RULES`."""
    kind = event_type.removeprefix(T).rsplit(".", 1)[0]
    yes = matching
    if kind in ("student.registration.completed", "auth.session.login.completed"):
        return {**user, "is_active": yes}
    if kind.startswith(("course.enrollment", "course.unenrollment")):
        return {"user": user, "course": COURSE, "mode": "verified" if yes else "audit",
                "is_active": True, "creation_date": "2026-10-01T08:00:00+00:00",
                "created_by": STAFF}
    if kind.startswith("certificate"):
        return {"user": user, "course": COURSE, "mode": "verified", "grade": "0.91",
                "download_url": "https://lms.example.org/certificates/abc", "name": "Demo",
                "current_status": "downloadable" if yes else "notpassing",
                "previous_status": "generating"}
    if kind.startswith("program.certificate"):
        return {"user": user, "program": {"uuid": "2f1b", "title": "Data Science",
                                          "program_type": "MicroMasters" if yes else "XSeries"},
                "uuid": "b8a7", "status": "awarded",
                "url": "https://credentials.example.org/credentials/b8a7/",
                "certificate_available_date": None}
    if kind == "cohort_membership.changed":
        return {"user": user, "course": COURSE, "name": "Cohort A" if yes else "Cohort B"}
    if kind.startswith("exam.attempt"):
        return {"student_user": user, "course_key": DEMO, "usage_key": UNIT,
                "exam_type": "proctored" if yes else "practice", "requesting_user": STAFF}
    if kind.startswith("user.course_access_role"):
        return {"user": user, "org_key": "edX", "course_key": DEMO,
                "role": "beta_testers" if yes else "staff"}
    if kind.startswith("forum.thread"):
        return {"body": "Hello", "commentable_id": "course", "id": "t1", "truncated": False,
                "url": "https://lms.example.org/t1", "user": user,
                "course_id": DEMO if yes else "course-v1:edX+Other+2026",
                "thread_type": "discussion", "anonymous": False, "anonymous_to_peers": False,
                "title": "Hi", "title_truncated": False, "group_id": None, "team_id": None,
                "category_id": None, "category_name": "General", "discussion": {"id": "d1"},
                "user_course_roles": ["student"], "user_forums_roles": ["Student"],
                "options": {"followed": True}}
    if kind.startswith("idv_attempt"):
        return {"attempt_id": 12, "user": user, "status": "approved" if yes else "denied",
                "name": user["pii"]["name"], "expiration_date": "2027-12-01T00:00:00+00:00"}
    if kind == "lti_provider.launch.success":
        return {"user": user, "course_key": DEMO, "usage_key": UNIT,
                "launch_params": {"roles": "Learner" if yes else "Instructor",
                                  "context_id": "ctx-1", "user_id": "lti-9",
                                  "extra_params": {"custom_x": "1"}}}
    if kind in ("course.passing.status.updated", "ccx.course.passing.status.updated"):
        course = COURSE if "ccx" not in kind else {
            "ccx_course_key": "ccx-v1:edX+DemoX+Demo_Course+ccx@1", "master_course_key": DEMO,
            "display_name": "", "coach_email": "", "start": None, "end": None,
            "max_students_allowed": None}
        return {"is_passing": yes, "course": course, "user": user}
    if kind.startswith("badge"):
        return {"uuid": "9c1d", "user": user,
                "template": {"uuid": "t-1", "origin": "credly" if yes else "accredible",
                             "name": None, "description": None, "image_url": None}}
    raise AssertionError(f"no payload for {event_type}")


def rules(event_type: str) -> dict[str, str]:
    """The rule of each type's requirement: one field of the type's own record."""
    kind = event_type.removeprefix(T)
    for prefix, path, value in [
        ("student.", "is_active", "true"), ("auth.", "is_active", "true"),
        ("course.enrollment", "mode", "verified"), ("course.unenrollment", "mode", "verified"),
        ("certificate", "current_status", "downloadable"),
        ("program.", "program.program_type", "MicroMasters"), ("cohort", "name", "Cohort A"),
        ("exam.", "exam_type", "proctored"), ("user.course_access_role", "role", "beta_testers"),
        ("forum.", "course_id", DEMO), ("idv_attempt", "status", "approved"),
        ("lti_provider", "launch_params.roles", "Learner"),
        ("course.passing", "is_passing", "true"), ("ccx.", "is_passing", "true"),
        ("badge.", "template.origin", "credly"),
    ]:
        if kind.startswith(prefix):
            return rule(path, value)
    raise AssertionError(event_type)


def event(event_type: str, n: int, user: dict[str, Any], matching: bool) -> dict[str, Any]:
    return {"id": f"{event_type}-{n}", "event_type": event_type,
            "time": f"2026-11-01T09:00:{n % 60:02d}+00:00",
            "data": {EVENT_SPECS[event_type].data_key: record(event_type, user, matching)}}


def events_for(event_type: str) -> list[dict[str, Any]]:
    """ada meets the rule, bob does not."""
    return [event(event_type, 1, learner("ada", 41), True),
            event(event_type, 2, learner("bob", 42), False)]


def configure(services: Any, synced: Any, types: list[str]) -> None:
    synced(*[f"t{n}" for n in range(len(types))])
    services.config.import_text(config_text(*[
        template_config(f"t{n}", [requirement("r", rules(t), event_type=t)])
        for n, t in enumerate(types)]))


def awards() -> list[tuple[str, str]]:
    return sorted((b.template.external_id, b.learner.username) for b in Badge.select())


def test_every_user_data_signal_has_a_schema_equal_to_upstream():
    upstream = sorted(p.name.removesuffix("_schema.avsc").replace("+", ".")
                      for p in FIXTURES.glob("*.avsc"))
    assert upstream == ALL_TYPES
    assert len(ALL_TYPES) == 30
    for event_type in ALL_TYPES:
        assert avro.schema_for(event_type) == json.loads(
            (FIXTURES / f"{event_type.replace('.', '+')}_schema.avsc").read_text())


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_a_real_shaped_payload_round_trips_through_avro_unchanged(event_type):
    data = events_for(event_type)[0]["data"]
    assert avro.decode(event_type, avro.encode(event_type, data)) == data


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_the_learner_is_credited_never_the_staff_member(event_type):
    parsed = parse_object(events_for(event_type)[0], frozenset(ALL_TYPES), _now())
    assert parsed.status == "ok"
    assert parsed.username == "ada" and parsed.user["id"] == 41
    assert EVENT_SPECS[event_type].user_key != "requesting_user"


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_an_event_without_its_learner_is_dropped_naming_the_field(event_type):
    spec = EVENT_SPECS[event_type]
    body = record(event_type, learner("ada", 41), True)
    if spec.user_key == SELF:
        body = {k: v for k, v in body.items() if k != "pii"}
    else:
        body = {k: v for k, v in body.items() if k != spec.user_key}
    parsed = parse_object({"id": "x", "event_type": event_type, "data": {spec.data_key: body}},
                          frozenset(ALL_TYPES), _now())
    assert parsed.status == "dropped", parsed.reason
    assert "no user data" in parsed.reason


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_type_through_json_intake(make_services, synced, event_type):
    services = make_services(events=(event_type,))
    configure(services, synced, [event_type])
    report = services.intake.ingest_lines([json.dumps(e) for e in events_for(event_type)],
                                          "file")
    assert report.counts == Counter(processed=2)
    assert awards() == [("t0", "ada")]


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_each_type_through_the_event_bus(make_services, synced, event_type):
    rds = redis_or_skip()
    stream = f"test-types-{event_type}"
    rds.delete(stream, f"{stream}-badgetui-dlq")
    try:
        services = make_services(events=(event_type,))
        configure(services, synced, [event_type])
        for e in events_for(event_type):
            rds.xadd(stream, entry(e))
        stats = BusConsumer(services.intake, bus_config(stream), services.clock, client=rds,
                            drain=True).run()
        assert (stats.counts["processed"], stats.dead_lettered) == (2, 0)
        assert awards() == [("t0", "ada")]
    finally:
        rds.delete(stream, f"{stream}-badgetui-dlq")


def test_all_types_through_the_cli_ingest_and_consume_alike(make_services, synced, db_url,
                                                            tmp_path):
    """One file and one stream holding every type: both commands credit the same learners."""
    rds = redis_or_skip()
    types = ALL_TYPES
    services = make_services(events=tuple(types))
    configure(services, synced, types)
    services.close()
    env_events = ",".join(types)

    def both(meets: str, misses: str, start: int) -> list[dict[str, Any]]:
        return [e for n, t in enumerate(types) for e in (
            event(t, start + 2 * n, learner(meets, 50), True),
            event(t, start + 2 * n + 1, learner(misses, 51), False))]

    from_file = both("ada", "bob", 100)
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in from_file), encoding="utf-8")
    env = bus_env(db_url, tmp_path, "unused", BADGETUI_EVENTS=env_events)
    result = subprocess.run([sys.executable, "-m", "badgetui", "events", "ingest", str(path),
                             "--no-deliver", "--json"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["processed"] == len(from_file)

    from_bus = both("cyd", "dan", 500)
    stream = "test-types-all"
    rds.delete(stream, f"{stream}-badgetui-dlq")
    try:
        pipe = rds.pipeline(transaction=False)
        for e in from_bus:
            pipe.xadd(stream, entry(e))
        pipe.execute()
        proc = consumer_process(bus_env(db_url, tmp_path, stream, BADGETUI_EVENTS=env_events),
                                "--drain", "--json")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        stats = json.loads(out)
        assert (stats["processed"], stats["dead_lettered"]) == (len(from_bus), 0)
    finally:
        rds.delete(stream, f"{stream}-badgetui-dlq")
    make_services(events=tuple(types))
    assert awards() == sorted((f"t{n}", who) for n in range(len(types)) for who in ("ada", "cyd"))
    assert IntakeRecord.select().where(IntakeRecord.outcome == "processed").count() == 4 * len(
        types)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_the_rule_editor_suggests_each_types_key_paths(services, event_type):
    offered = dict(services.editor.key_paths(event_type))
    assert rules(event_type)["path"] in offered
    user_key = EVENT_SPECS[event_type].user_key
    username = "pii.username" if user_key == SELF else f"{user_key}.pii.username"
    assert offered[username] == "str"


def test_rules_under_a_map_are_known_to_lint_and_match(make_services, synced):
    forum = f"{T}forum.thread.created.v1"
    services = make_services(events=(forum,))
    synced("t0")
    services.config.import_text(config_text(template_config("t0", [
        requirement("r", rule("discussion.id", "d1"), event_type=forum)])))
    assert dict(services.editor.key_paths(forum))["options"] == "dict"
    assert [f for f in services.config.lint() if f.level == "error"] == []
    with pytest.raises(ConfigImportError, match=r"rule on 'no_such\.key', which"):
        services.config.import_text(config_text(template_config("t0", [
            requirement("r", rule("discussion.id", "d1"), rule("no_such.key", "1"),
                        event_type=forum)])))
    services.intake.ingest_lines([json.dumps(events_for(forum)[0])], "file")
    assert awards() == [("t0", "ada")]
