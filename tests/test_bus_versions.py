"""What the consumer does with what it was not written for: newer minor versions, types it has
no schema for, and a stream that is not where the LMS publishes (Tutor's random prefix)."""

from __future__ import annotations

import copy
import io
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import fastavro
import pytest
import redis

from badgetui.domain import avro
from badgetui.domain.events import COURSE_PASSING
from badgetui.services.bus import BusConsumer
from badgetui.store.models import Badge, IntakeRecord
from tests.bus_helpers import bus_config, bus_env, consume, entry, redis_or_skip
from tests.helpers import DEMO, config_text, course_event, requirement, rule, template_config


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def stream(rds: redis.Redis, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"test-versions-{request.node.name}"
    rds.delete(name, f"{name}-badgetui-dlq")
    yield name
    rds.delete(name, f"{name}-badgetui-dlq")


def setup(services, synced) -> None:
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO))])))


def newer_bytes(event: dict, **appended: object) -> bytes:
    """`event_data` as a producer one minor version ahead writes it: optional fields appended
    to the record (what openedx-events' compatibility rules allow a minor version)."""
    schema = copy.deepcopy(avro.schema_for(COURSE_PASSING))
    record = schema["fields"][0]["type"]
    for name, value in appended.items():
        kind = "long" if isinstance(value, int) else "string"
        record["fields"].append({"name": name, "type": ["null", kind], "default": None})
    data = copy.deepcopy(event["data"])
    data["course_passing_status"].update(appended)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), data)
    return out.getvalue()


def test_a_newer_minor_version_is_read_with_the_known_fields_and_logged_once(
        services, synced, rds, stream, caplog):
    setup(services, synced)
    events = [course_event(f"u{n}", DEMO) for n in range(3)]
    for e in events:
        rds.xadd(stream, entry(e, minorversion=b"1",
                               event_data=newer_bytes(e, grade="0.93", attempts=2)))
    with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
        stats = consume(services, stream, client=rds)
    assert stats.counts == Counter(processed=3) and stats.dead_lettered == 0
    assert stats.newer == 3 and stats.as_dict()["newer_minor"] == 3
    assert sorted(b.learner.username for b in Badge.select()) == ["u0", "u1", "u2"]
    lines = [r.getMessage() for r in caplog.records if "minor version 1" in r.getMessage()]
    assert len(lines) == 1 and COURSE_PASSING in lines[0] and "known fields" in lines[0]
    stored = IntakeRecord.select().where(IntakeRecord.outcome == "processed").first()
    assert "grade" not in stored.payload  # only the fields badgetui knows are kept


def test_leftover_bytes_at_our_own_version_and_undecodable_newer_ones_are_dead_lettered(
        services, synced, rds, stream):
    setup(services, synced)
    good = course_event("ok", DEMO)
    same = course_event("same", DEMO)
    broken = course_event("broken", DEMO)
    rds.xadd(stream, entry(same, event_data=newer_bytes(same, grade="0.5")))  # claims minor 0
    rds.xadd(stream, entry(broken, minorversion=b"2", event_data=b"\x01\x02"))
    rds.xadd(stream, entry(broken, id=b"bad-minor", minorversion=b"one"))
    rds.xadd(stream, entry(good))
    stats = consume(services, stream, client=rds)
    assert stats.counts["processed"] == 1 and stats.dead_lettered == 3
    reasons = [f[b"dlq_reason"].decode() for _, f in rds.xrange(f"{stream}-badgetui-dlq")]
    assert "minor version 0" in reasons[0] and "bytes left after the Avro record" in reasons[0]
    assert "minor version 2, newer than the 0 badgetui knows" in reasons[1]
    assert "minorversion 'one' is not a non-negative integer" in reasons[2]
    assert [b.learner.username for b in Badge.select()] == ["ok"]


def test_a_configured_type_without_a_schema_is_refused_at_start_up(make_services, rds, stream,
                                                                   tmp_path, db_url):
    unknown = "org.openedx.learning.course.persistent_grade_summary.changed.v1"
    env = bus_env(db_url, tmp_path, stream,
                  BADGETUI_EVENTS=f"{COURSE_PASSING},{unknown}")
    result = subprocess.run([sys.executable, "-m", "badgetui", "events", "consume", "--drain"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert unknown in lines[0] and "no Avro schema" in lines[0]
    assert not rds.exists(stream)  # refused before touching Redis
    with pytest.raises(ValueError, match="cannot decode"):
        services = make_services(events=(COURSE_PASSING, unknown))
        BusConsumer(services.intake, bus_config(stream), services.clock, client=rds)


def test_a_stream_that_did_not_exist_is_reported_with_the_streams_that_have_entries(
        services, rds, stream, caplog):
    tutor = f"{stream}-x7k2-learning-badges-lifecycle"
    rds.delete(tutor)
    try:
        rds.xadd(tutor, entry(course_event("ann", DEMO)))
        with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
            consume(services, stream, client=rds)
        lines = [r.getMessage() for r in caplog.records if "did not exist" in r.getMessage()]
        assert len(lines) == 1
        assert f"{tutor} (1 entries)" in lines[0] and "BADGETUI_BUS_STREAM" in lines[0]
    finally:
        rds.delete(tutor)


def test_an_empty_stream_beside_a_busy_one_is_reported_once(services, rds, stream, caplog):
    tutor = f"{stream}-q9-learning-badges-lifecycle"
    rds.delete(tutor)
    try:
        rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)  # exists, but empty
        for n in range(2):
            rds.xadd(tutor, entry(course_event(f"p{n}", DEMO)))
        with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
            consume(services, stream, client=rds)
        messages = [r.getMessage() for r in caplog.records]
        assert not any("did not exist" in m for m in messages)
        empty = [m for m in messages if "is empty while" in m]
        assert len(empty) == 1 and f"{tutor} (2 entries)" in empty[0]
    finally:
        rds.delete(tutor)


def test_no_warning_when_the_stream_has_entries(services, synced, rds, stream, caplog):
    setup(services, synced)
    rds.xadd(stream, entry(course_event("ann", DEMO)))
    with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
        consume(services, stream, client=rds)
    assert not [r for r in caplog.records
                if "did not exist" in r.getMessage() or "is empty" in r.getMessage()]
