"""The Redis Streams consumer and publisher against a real Redis (openedx-events.md §7.2, §7.3).

Each test has a stream of its own, deleted afterwards. The two-consumer comparison runs on SQLite
(one file shared by two processes) and, when BADGETUI_TEST_POSTGRES holds a server URL, on
PostgreSQL (it creates and drops its own databases).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
import redis
from peewee import OperationalError

from badgetui.domain import avro
from badgetui.domain.events import BADGE_AWARDED, BADGE_REVOKED, COURSE_PASSING
from badgetui.services.bus import (
    FIELDS,
    BusConsumer,
    BusPublisher,
    diagnostics,
    read_watermark,
    utc_time,
    watermark_keys,
    write_watermark,
)
from badgetui.services.common import in_transaction, iso
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Fulfillment,
    IntakeRecord,
    OutgoingEvent,
    Progress,
)
from tests.bus_helpers import (
    REDIS_URL,
    bus_config,
    bus_env,
    consume,
    consumer_process,
    db_count,
    entry,
    pending,
    produce,
    redis_or_skip,
    storm_config,
    storm_events,
)
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    penalty,
    requirement,
    rule,
    template_config,
)
from tests.test_avro import V1, V3

# Read at import: the autouse fixture of conftest.py clears BADGETUI_* inside tests.
POSTGRES_URL = os.environ.get("BADGETUI_TEST_POSTGRES")
FIXTURES = Path(__file__).parent / "fixtures" / "avro"


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def stream(rds: redis.Redis) -> Iterator[str]:
    """A stream of this test's own; it and its dead-letter stream are deleted afterwards."""
    name = f"badgetui-test-{uuid.uuid4().hex[:12]}"
    yield name
    rds.delete(name, f"{name}-badgetui-dlq")


def setup_templates(services: Any, synced: Any) -> None:
    """(demo) and (other), with a penalty on failing demo: order matters, so replays show."""
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                    group="A"),
        requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                    group="B"),
    ], [penalty(["demo"], rule("is_passing", "false"), rule("course.course_key", DEMO))])))


def state() -> tuple[Any, ...]:
    """What an uninterrupted run and an interrupted one must agree on."""
    return (
        sorted((b.learner.username, b.template.external_id, b.status) for b in Badge.select()),
        sorted((p.learner.username, p.template.external_id, p.fulfilled_groups, p.complete,
                p.badge_id is not None) for p in Progress.select()),
        sorted((f.progress.learner.username, f.requirement.key, f.event_id)
               for f in Fulfillment.select()),
        sorted(Counter((j.kind, j.state) for j in DeliveryJob.select()).items()),
        sorted(Counter(o.event_type for o in OutgoingEvent.select()).items()),
        IntakeRecord.select().where(IntakeRecord.outcome == "processed").count(),
    )


def outcomes() -> Counter[str]:
    return Counter(r.outcome for r in IntakeRecord.select())


def workload(events: int, learners: int, seed: int, prefix: str = "e") -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        course_event(f"l{rnd.randrange(learners)}", rnd.choice([DEMO, OTHER]),
                     passing=rnd.random() < 0.85, event_id=f"{prefix}{n}", seconds=n)
        for n in range(events)
    ]


def dead_letters(rds: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in rds.xrange(f"{stream}-badgetui-dlq")]


# -- envelope and dispatch ----------------------------------------------------------------------
def test_a_bus_entry_is_recorded_like_the_same_event_from_a_file(services, synced, rds,
                                                                 stream):
    setup_templates(services, synced)
    event = course_event("ada", DEMO, event_id="2f0c5a8e-9f7b-11ef-8c3a-0242ac120005")
    produce(rds, stream, event)
    stats = consume(services, stream)
    assert stats.counts == Counter(processed=1) and stats.acked == 1
    bus = IntakeRecord.get()
    assert (bus.event_id, bus.event_type, bus.source) == (event["id"], COURSE_PASSING,
                                                         f"redis:{stream}")
    assert json.loads(bus.payload) == event["data"]["course_passing_status"]
    assert iso(bus.event_time) == event["time"] and bus.line is None
    assert bus.effects == "template 1: fulfilled demo"
    assert pending(rds, stream) == 0


def test_utc_time_accepts_z_and_refuses_other_offsets():
    assert utc_time("2026-11-01T09:00:00Z").utcoffset().total_seconds() == 0
    assert utc_time("2026-11-01T09:00:00.123456+00:00").microsecond == 123456
    for bad in ("2026-11-01T10:00:00+01:00", "2026-11-01T09:00:00", "yesterday"):
        with pytest.raises(ValueError):
            utc_time(bad)


def test_types_not_configured_are_acked_and_ignored_without_decoding(services, synced, rds,
                                                                    stream):
    setup_templates(services, synced)
    good = course_event("ada", DEMO)
    rds.xadd(stream, entry(good))
    badge = entry(good, type=BADGE_AWARDED.encode(), id=b"b-1", event_data=b"\x00garbage")
    rds.xadd(stream, badge)
    rds.xadd(stream, entry(good, type=b"org.openedx.learning.certificate.created.v1",
                           id=b"c-1", event_data=b""))
    stats = consume(services, stream)
    assert stats.counts == Counter(processed=1, ignored=2)
    assert stats.dead_lettered == 0 and pending(rds, stream) == 0
    ignored = IntakeRecord.select().where(IntakeRecord.outcome == "ignored")
    assert sorted(r.ref_id for r in ignored) == ["b-1", "c-1"]
    assert {r.reason for r in ignored} == {"event type not configured"}


def test_malformed_entries_go_to_the_dead_letter_stream_at_once(services, synced, rds, stream):
    setup_templates(services, synced)
    v1, v3 = base64.b64decode(V1), base64.b64decode(V3)
    base = course_event("ada", DEMO, event_id="ok-1")
    bad = {
        "no-time": entry(base, id=b"m1", time=None),
        "no-data": entry(base, id=b"m2", event_data=None),
        "no-sourcelib": entry(base, id=b"m3", sourcelib=None),
        "v1-as-ccx": entry(base, id=b"m4",
                           type=b"org.openedx.learning.ccx.course.passing.status.updated.v1",
                           event_data=v1),
        "v1-truncated": entry(base, id=b"m5", event_data=v1[:-1]),
        "v3-as-course": entry(base, id=b"m6", event_data=v3),
        "leftover": entry(base, id=b"m7", event_data=v1 + b"\x00"),
        "not-utc": entry(base, id=b"m8", time=b"2026-11-01T10:00:00+01:00"),
        "naive": entry(base, id=b"m9", time=b"2026-11-01T09:00:00"),
        "bad-utf8": entry(base, id=b"m10", sourcehost=b"lms-\xff\xfe"),
        "empty-id": entry(base, id=b""),
        "no-type": entry(base, id=b"m12", type=None),
    }
    rds.xadd(stream, entry(base))
    ids = {name: rds.xadd(stream, fields) for name, fields in bad.items()}
    zulu = course_event("bob", DEMO, event_id="ok-2")
    rds.xadd(stream, entry(zulu, time=b"2026-11-01T09:00:00Z"))

    stats = consume(services, stream)
    assert stats.dead_lettered == len(bad)
    assert stats.counts == Counter(processed=2, rejected=len(bad))
    assert pending(rds, stream) == 0
    letters = {f[b"dlq_stream_id"]: f for f in dead_letters(rds, stream)}
    assert set(letters) == set(ids.values())
    for name, entry_id in ids.items():
        letter = letters[entry_id]
        original = {k: v for k, v in letter.items() if not k.startswith(b"dlq_")}
        assert original == bad[name], name
        assert letter[b"dlq_attempts"] == b"1"
        assert letter[b"dlq_reason"].startswith(b"malformed: "), letter[b"dlq_reason"]
        assert (letter[b"dlq_group"], letter[b"dlq_consumer"]) == (b"badgetui", b"test-1")
        utc_time(letter[b"dlq_time"].decode())
    reasons = {name: letters[i][b"dlq_reason"].decode() for name, i in ids.items()}
    assert reasons["no-time"] == "malformed: field time is missing"
    assert "ends before the record" in reasons["v1-truncated"]
    assert "ends before the record" in reasons["v1-as-ccx"]
    assert "1 bytes left" in reasons["leftover"]
    assert "is not UTC" in reasons["not-utc"]
    assert "has no offset" in reasons["naive"]
    assert reasons["bad-utf8"] == "malformed: field sourcehost is not valid UTF-8"
    # Each also shows in the intake log, as rejected, never as processed.
    rejected = IntakeRecord.select().where(IntakeRecord.outcome == "rejected")
    assert all("moved to" in r.reason for r in rejected) and rejected.count() == len(bad)


# -- positions, restarts and crashes -----------------------------------------------------------
def test_events_produced_while_down_are_processed_after_restart(services, synced, rds, stream):
    setup_templates(services, synced)
    produce(rds, stream, course_event("early", DEMO, event_id="before-group"))
    # A brand-new group starts at `$`: what the stream held before is not ours.
    assert consume(services, stream, start="$").counts == Counter()
    # badgetui is down while the LMS goes on.
    produce(rds, stream, course_event("ada", DEMO, event_id="d1"),
            course_event("ada", OTHER, event_id="d2"))
    stats = consume(services, stream, start="$")  # the group exists: never moved
    assert stats.counts == Counter(processed=2) and stats.awarded == 1
    assert [b.learner.username for b in Badge.select()] == ["ada"]
    # Another group asked to start at 0 takes everything still retained.
    assert consume(services, stream, group="replay").counts == Counter(processed=1, duplicate=2)


def test_a_crash_between_commit_and_ack_redelivers_and_dedupes(services, synced, rds, stream,
                                                               monkeypatch):
    setup_templates(services, synced)
    produce(rds, stream, *workload(30, 5, seed=1))
    client = redis.Redis.from_url(REDIS_URL)
    real_xack = client.xack
    calls = Counter()

    def lost_connection(*args: Any) -> Any:
        calls["xack"] += 1
        if calls["xack"] == 1:
            raise redis.ConnectionError("connection lost (injected)")
        return real_xack(*args)

    monkeypatch.setattr(client, "xack", lost_connection)
    stats = consume(services, stream, client=client, batch=10)
    assert stats.reconnects == 1
    # The first batch was committed but never acked: redelivered, recorded as duplicates.
    assert stats.counts["processed"] == 30 and stats.counts["duplicate"] == 10
    assert pending(rds, stream) == 0


def test_a_killed_redis_connection_is_reopened_and_the_stream_resumes(services, synced, rds,
                                                                     stream):
    import threading

    setup_templates(services, synced)
    stop = threading.Event()
    consumer = BusConsumer(services.intake, bus_config(stream), services.clock, stop=stop)
    worker = threading.Thread(target=consumer.run)
    worker.start()
    try:
        produce(rds, stream, *workload(50, 10, seed=12, prefix="x"))
        deadline = time.monotonic() + 30
        while consumer.stats.acked < 50:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        killed = rds.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        produce(rds, stream, *workload(50, 10, seed=13, prefix="y"))
        while consumer.stats.acked < 100:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert consumer.stats.reconnects >= 1
    assert consumer.stats.counts["processed"] == 100 and pending(rds, stream) == 0


def test_idle_entries_of_a_dead_consumer_are_taken_over(services, synced, rds, stream):
    setup_templates(services, synced)
    rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)
    produce(rds, stream, *workload(12, 4, seed=2))
    taken = rds.xreadgroup("badgetui", "dead-pod", {stream: ">"}, count=5)
    assert len(taken[0][1]) == 5
    time.sleep(0.3)
    stats = consume(services, stream, claim_timeout=0.2)
    assert stats.counts["processed"] == 12 and pending(rds, stream) == 0


def test_a_poison_entry_is_retried_then_dead_lettered_while_the_rest_goes_on(
        services, synced, rds, stream, monkeypatch):
    setup_templates(services, synced)
    real = services.processor.process
    calls = Counter()

    def flaky(events, source):
        if any(e.id == "poison" for e in events):
            calls["poison"] += 1
            raise RuntimeError("injected failure")
        return real(events, source)

    monkeypatch.setattr(services.processor, "process", flaky)
    before = workload(5, 3, seed=3, prefix="a")
    after = workload(5, 3, seed=4, prefix="b")
    produce(rds, stream, *before, course_event("ada", DEMO, event_id="poison"), *after)
    stats = consume(services, stream, batch=4, max_attempts=3)

    assert calls["poison"] == 1 + 3  # its batch, then three attempts of its own
    assert stats.counts["processed"] == 10 and stats.retried == 2
    assert stats.dead_lettered == 1 and pending(rds, stream) == 0
    (letter,) = dead_letters(rds, stream)
    assert letter[b"id"] == b"poison" and letter[b"dlq_attempts"] == b"3"
    assert letter[b"dlq_reason"] == (b"processing failed 3 times: RuntimeError: injected "
                                     b"failure")
    assert not IntakeRecord.select().where(IntakeRecord.ref_id == "poison").exists()


def test_a_database_outage_uses_up_no_attempts(services, synced, rds, stream, monkeypatch):
    setup_templates(services, synced)
    real = services.processor.process
    calls = Counter()

    def down(events, source):
        calls["process"] += 1
        if calls["process"] <= 4:
            raise OperationalError("could not connect to server (injected)")
        return real(events, source)

    monkeypatch.setattr(services.processor, "process", down)
    produce(rds, stream, *workload(6, 3, seed=5))
    stats = consume(services, stream, max_attempts=1)
    assert stats.dead_lettered == 0 and stats.counts["processed"] == 6
    assert pending(rds, stream) == 0


def test_lag_warnings(rds, stream, caplog):
    rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)
    produce(rds, stream, *workload(100, 10, seed=6))
    config = bus_config(stream, maxlen=100)
    with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
        assert diagnostics.check_lag(rds, config, 0) == 0
    assert "is 100 entries behind" in caplog.text
    assert "ENTRIES LOST" not in caplog.text
    rds.xreadgroup("badgetui", "test-1", {stream: ">"}, count=10)
    rds.xtrim(stream, maxlen=50, approximate=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
        assert diagnostics.check_lag(rds, config, 0) == 40
    assert "ENTRIES LOST" in caplog.text and "(40 entries)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="badgetui.bus"):
        diagnostics.check_lag(rds, config, 40)  # already told: not again
    assert "ENTRIES LOST" not in caplog.text


# -- processes: SIGTERM and SIGKILL -------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_batch_in_hand_and_exits_zero(services, synced, rds, stream,
                                                            tmp_path, db_url, signum):
    setup_templates(services, synced)
    produce(rds, stream, *workload(3000, 100, seed=7))
    env = bus_env(db_url, tmp_path, stream, BADGETUI_BUS_BATCH="20")
    proc = consumer_process(env, "--json")
    deadline = time.monotonic() + 60
    while db_count(db_url, "SELECT COUNT(*) FROM intake_record") < 100:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    counts = json.loads(out)
    # Stopped mid-stream, with nothing left in hand: every entry read was committed and acked.
    group = next(g for g in rds.xinfo_groups(stream) if g["name"] == b"badgetui")
    assert 0 < group["entries-read"] < 3000
    assert pending(rds, stream) == 0
    assert counts["acked"] == group["entries-read"]
    assert db_count(db_url, "SELECT COUNT(*) FROM intake_record") == counts["acked"]


def test_sigkill_mid_stream_then_restart_equals_an_uninterrupted_run(
        services, synced, rds, stream, tmp_path, db_url, new_database):
    setup_templates(services, synced)
    events = workload(2400, 80, seed=8)
    produce(rds, stream, *events)
    env = bus_env(db_url, tmp_path, stream, BADGETUI_BUS_BATCH="25",
                  BADGETUI_BUS_CONSUMER="pod-1")
    count = "SELECT COUNT(*) FROM intake_record"
    for threshold in (300, 1200):
        proc = consumer_process(env)
        while db_count(db_url, count) < threshold:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = consumer_process(env, "--drain", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert pending(rds, stream) == 0
    interrupted = state()
    services.close()

    # The same stream, uninterrupted, into a fresh database.
    ref_db = new_database("reference")
    from badgetui.services import Services
    from badgetui.settings import Settings

    ref = Services.open(Settings(db=ref_db))
    ref.templates.add_account("credly", "org", "key-0000")
    from badgetui.services.templates import SyncedTemplate
    from badgetui.store.models import ProviderAccount

    ref.templates.upsert_synced(ProviderAccount.get(), [SyncedTemplate("t1", "t1")])
    setup_templates(ref, lambda *ids: list(ids))
    ref_env = bus_env(ref_db, tmp_path, stream, BADGETUI_BUS_GROUP="reference",
                      BADGETUI_BUS_BATCH="25")
    proc = consumer_process(ref_env, "--drain", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["processed"] == 2400
    reference = state()
    ref.close()
    assert interrupted == reference
    assert any(status == "revoked" for _, _, status in reference[0])


def test_a_consumer_killed_beside_another_is_taken_over_and_changes_nothing(
        services, synced, rds, stream, tmp_path, db_url, new_database):
    """Two consumers, one SIGKILLed mid-stream: the other waits for the entries it held, takes
    them over after the claim timeout and ends where one uninterrupted consumer ends."""
    setup_templates(services, synced)
    events = workload(2400, 80, seed=9)
    env = bus_env(db_url, tmp_path, stream, BADGETUI_BUS_BATCH="25",
                  BADGETUI_BUS_CLAIM_TIMEOUT="1")
    procs = [consumer_process({**env, "BADGETUI_BUS_CONSUMER": f"pod-{n}"}, "--json")
             for n in (1, 2)]
    try:
        deadline = time.monotonic() + 60
        while len(_consumers(rds, stream)) < 2:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.05)
        produce(rds, stream, *events)
        while db_count(db_url, "SELECT COUNT(*) FROM intake_record") < 600:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.005)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        deadline = time.monotonic() + 120
        while not _read_all(rds, stream, len(events)):
            assert time.monotonic() < deadline and procs[1].poll() is None
            time.sleep(0.05)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    out, err = procs[1].communicate(timeout=60)
    procs[0].communicate(timeout=10)
    assert procs[1].returncode == 0, err
    assert "taking over" in err or "took over" in err, err
    assert json.loads(out)["processed"] > 0
    survived = state()
    services.close()

    ref_db = new_database("reference")
    from badgetui.services import Services
    from badgetui.services.templates import SyncedTemplate
    from badgetui.settings import Settings
    from badgetui.store.models import ProviderAccount

    ref = Services.open(Settings(db=ref_db))
    ref.templates.add_account("credly", "org", "key-0000")
    ref.templates.upsert_synced(ProviderAccount.get(), [SyncedTemplate("t1", "t1")])
    setup_templates(ref, lambda *ids: list(ids))
    proc = consumer_process(bus_env(ref_db, tmp_path, stream, BADGETUI_BUS_GROUP="reference",
                                    BADGETUI_BUS_BATCH="25"), "--drain", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    reference = state()
    ref.close()
    assert survived == reference
    assert any(status == "revoked" for _, _, status in reference[0])


# -- publishing ---------------------------------------------------------------------------------
def _awards_and_a_revocation(services, synced) -> None:
    setup_templates(services, synced)
    events = [course_event("ada", DEMO), course_event("ada", OTHER),
              course_event("bob", DEMO), course_event("bob", OTHER),
              course_event("bob", DEMO, passing=False)]
    services.intake.ingest_objects(events, "test")


def _avsc(event_type: str) -> Any:
    path = FIXTURES / f"{event_type.replace('.', '+')}_schema.avsc"
    return fastavro.parse_schema(json.loads(path.read_text()))


def test_publisher_round_trip(services, synced, rds, stream):
    _awards_and_a_revocation(services, synced)
    rows = list(OutgoingEvent.select().order_by(OutgoingEvent.id))
    assert [r.event_type for r in rows] == [BADGE_AWARDED, BADGE_AWARDED, BADGE_REVOKED]
    publisher = BusPublisher(rds, stream, services.clock, host="badgetui-1")
    assert publisher.publish_pending() == 3
    assert publisher.publish_pending() == 0  # published once

    entries = rds.xrange(stream)
    assert len(entries) == 3
    for (_, fields), row in zip(entries, rows, strict=True):
        assert [k.decode() for k in fields] == list(FIELDS)
        assert fields[b"type"] == row.event_type.encode()
        assert fields[b"id"] == row.uuid.encode()
        assert fields[b"source"] == b"openedx/badgetui/web"
        assert fields[b"sourcehost"] == b"badgetui-1"
        assert (fields[b"minorversion"], fields[b"sourcelib"]) == (b"0", b"11.2.0")
        assert utc_time(fields[b"time"].decode()).replace(tzinfo=None) == row.time
        data = {"badge": json.loads(row.payload)}
        assert avro.decode(row.event_type, fields[b"event_data"]) == data
        # ... and with upstream's own schema file, as Credentials would read it
        upstream = fastavro.schemaless_reader(io.BytesIO(fields[b"event_data"]),
                                              _avsc(row.event_type), None)
        assert upstream == data
        assert data["badge"]["template"] == {"uuid": "t1", "origin": "credly",
                                             "name": "Template t1", "description": None,
                                             "image_url": None}
    revoked = json.loads(rows[2].payload)
    assert revoked["uuid"] == json.loads(rows[1].payload)["uuid"]  # bob's badge, both times
    assert OutgoingEvent.select().where(OutgoingEvent.published_at.is_null()).count() == 0

    # badgetui reads its own stream: its badge events are acknowledged and ignored.
    stats = consume(services, stream)
    assert stats.counts == Counter(ignored=3) and pending(rds, stream) == 0


def test_a_republish_after_a_crash_keeps_the_event_id(services, synced, rds, stream,
                                                     make_services):
    _awards_and_a_revocation(services, synced)
    publisher = BusPublisher(rds, stream, services.clock)
    publisher.publish_pending()
    first = OutgoingEvent.select().order_by(OutgoingEvent.id).first()
    # A crash after XADD, before published_at was written: the row goes out again...
    OutgoingEvent.update(published_at=None).where(OutgoingEvent.id == first.id).execute()
    assert publisher.publish_pending() == 1
    ids = [f[b"id"] for _, f in rds.xrange(stream)]
    assert ids.count(first.uuid.encode()) == 2
    # ... and a consumer that takes badge events records the second copy as a duplicate.
    reader = make_services(events=(COURSE_PASSING, BADGE_AWARDED, BADGE_REVOKED))
    stats = consume(reader, stream)
    assert stats.counts == Counter(processed=3, duplicate=1)


def test_cli_publish_once_and_consume_with_publish(services, synced, rds, stream, tmp_path,
                                                   db_url):
    setup_templates(services, synced)
    produce(rds, stream, course_event("ada", DEMO), course_event("ada", OTHER))
    env = bus_env(db_url, tmp_path, stream)
    proc = consumer_process(env, "--publish", "--drain", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    counts = json.loads(out)
    assert counts["processed"] == 2 and counts["awarded"] == 1 and counts["published"] == 1
    types = [f[b"type"] for _, f in rds.xrange(stream)]
    assert types == [COURSE_PASSING.encode()] * 2 + [BADGE_AWARDED.encode()]

    services.intake.ingest_objects([course_event("ada", DEMO, passing=False)], "file")
    result = subprocess.run(
        [sys.executable, "-m", "badgetui", "events", "publish", "--once", "--json",
         "--redis", REDIS_URL, "--stream", stream],
        env={k: v for k, v in env.items() if k not in ("BADGETUI_REDIS_URL",
                                                       "BADGETUI_BUS_STREAM")},
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"published": 1}
    assert rds.xrange(stream)[-1][1][b"type"] == BADGE_REVOKED.encode()


def test_consume_with_deliver_issues_at_the_provider(make_services, rds, stream, tmp_path,
                                                     db_url):
    from badgetui.sandbox import Emulator
    from badgetui.sandbox.server import start_in_thread
    from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed

    emulator = Emulator(sandbox_seed(), rng_seed=5)
    base, stop_emulator = start_in_thread(emulator)
    try:
        services = make_services(credly_api_url=f"{base}/credly/v1/")
        asyncio.run(services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key"))
        asyncio.run(services.sync.sync(None))
        tpl = credly_templates(1)[0]["id"]
        services.config.import_text(config_text(template_config(tpl, [
            requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO))])))
        produce(rds, stream, *[course_event(f"u{n}", DEMO, uid=100 + n) for n in range(20)])
        env = bus_env(db_url, tmp_path, stream, BADGETUI_CREDLY_API_URL=f"{base}/credly/v1/",
                      BADGETUI_DELIVERY_BASE_DELAY="0.1")
        proc = consumer_process(env, "--deliver", "--drain", "--json")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["awarded"] == 20
        remote = [b for b in emulator.state()["credly"]["badges"]
                  if b["badge_template_id"] == tpl]
        assert len(remote) == 20
        assert {j.state for j in DeliveryJob.select()} == {"done"}
        assert sorted(b.external_id for b in Badge.select()) == sorted(b["id"] for b in remote)
    finally:
        stop_emulator()


def test_cli_refuses_to_consume_without_a_redis_url(tmp_path):
    env = bus_env(tmp_path / "none.db", tmp_path, "s")
    del env["BADGETUI_REDIS_URL"]
    result = subprocess.run([sys.executable, "-m", "badgetui", "events", "consume"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ("badgetui: error: no Redis URL: pass --redis URL or set "
                                     "BADGETUI_REDIS_URL")


# -- stream order across consumers -------------------------------------------------------------
def _pass_pass_fail(rds: redis.Redis, stream: str) -> list[bytes]:
    """ada earns the badge (demo, other), then fails demo: awarded, then revoked. Taken out of
    order, the failure comes first (nothing to revoke) and the badge stays awarded, or comes
    between the two and no badge is earned at all."""
    return produce(rds, stream, course_event("ada", DEMO, event_id="p1"),
                   course_event("ada", OTHER, event_id="p2"),
                   course_event("ada", DEMO, passing=False, event_id="f3"))


def test_a_batch_waits_for_what_a_dead_consumer_held_then_takes_it_over(services, synced, rds,
                                                                       stream):
    setup_templates(services, synced)
    rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)
    ids = _pass_pass_fail(rds, stream)
    assert len(rds.xreadgroup("badgetui", "dead-pod", {stream: ">"}, count=2)[0][1]) == 2
    # Our consumer is handed the failure; the passes before it wait with the dead consumer.
    stats = consume(services, stream, claim_timeout=0.5)
    assert stats.counts == Counter(processed=3) and pending(rds, stream) == 0
    assert stats.waited > 0.2
    assert [(b.learner.username, b.status) for b in Badge.select()] == [("ada", "revoked")]
    assert read_watermark(watermark_keys(stream, "badgetui")) == _key(ids[-1])


def test_another_consumers_entry_between_two_of_ours_cuts_the_batch(services, synced, rds,
                                                                    stream):
    setup_templates(services, synced)
    rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)
    ids = _pass_pass_fail(rds, stream)
    rds.xreadgroup("badgetui", "dead-pod", {stream: ">"}, count=3)
    # test-1 crashed holding the first and the last entry; dead-pod still holds the middle one.
    rds.xclaim(stream, "badgetui", "test-1", 0, [ids[0], ids[2]], justid=True)
    stats = consume(services, stream, claim_timeout=0.5)
    assert stats.counts == Counter(processed=3) and pending(rds, stream) == 0
    assert [(b.learner.username, b.status) for b in Badge.select()] == [("ada", "revoked")]
    records = IntakeRecord.select().order_by(IntakeRecord.id)
    assert [r.ref_id for r in records] == ["p1", "p2", "f3"]


def test_a_batch_below_the_watermark_waits_for_nobody(services, synced, rds, stream):
    setup_templates(services, synced)
    rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)
    ids = _pass_pass_fail(rds, stream)
    # A consumer committed the two passes and died before acknowledging them.
    rds.xreadgroup("badgetui", "dead-pod", {stream: ">"}, count=2)
    services.intake.ingest_objects([course_event("ada", DEMO, event_id="p1"),
                                    course_event("ada", OTHER, event_id="p2")], "crashed")
    in_transaction(lambda: write_watermark(watermark_keys(stream, "badgetui"), _key(ids[1])))
    started = time.monotonic()
    stats = consume(services, stream)  # claim timeout 60 s: the dead pod's entries stay
    assert time.monotonic() - started < 5 and stats.waited == 0
    assert stats.counts == Counter(processed=1)
    assert [(b.learner.username, b.status) for b in Badge.select()] == [("ada", "revoked")]
    assert pending(rds, stream) == 2
    # Taken over later, they are recorded as the duplicates they are.
    time.sleep(0.3)
    stats = consume(services, stream, consumer="test-2", claim_timeout=0.2)
    assert stats.counts == Counter(duplicate=2) and pending(rds, stream) == 0


def test_a_stop_while_waiting_leaves_the_batch_pending(services, synced, rds, stream,
                                                      monkeypatch):
    import threading

    from badgetui.services.bus import consumer as bus

    monkeypatch.setattr(bus, "STOP_GRACE", 0.5)
    setup_templates(services, synced)
    rds.xgroup_create(stream, "badgetui", id="0", mkstream=True)
    _pass_pass_fail(rds, stream)
    rds.xreadgroup("badgetui", "dead-pod", {stream: ">"}, count=2)
    stop = threading.Event()
    consumer = BusConsumer(services.intake, bus_config(stream), services.clock, stop=stop)
    worker = threading.Thread(target=consumer.run)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while consumer.stats.waited == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    # Not committed, not acknowledged: the failure stays ours, to finish after a restart.
    assert IntakeRecord.select().count() == 0
    mine = rds.xpending_range(stream, "badgetui", "-", "+", 10, consumername="test-1")
    assert [r["message_id"] for r in mine] == [rds.xrange(stream)[2][0]]
    time.sleep(0.3)
    stats = consume(services, stream, claim_timeout=0.2)
    assert stats.counts == Counter(processed=3)
    assert [b.status for b in Badge.select()] == ["revoked"]


def _consumers(rds: redis.Redis, stream: str, group: str = "badgetui") -> list[bytes]:
    try:
        return [c["name"] for c in rds.xinfo_consumers(stream, group)]
    except redis.ResponseError:  # no stream or group yet
        return []


def _read_all(rds: redis.Redis, stream: str, total: int, group: str = "badgetui") -> bool:
    """The group was handed all `total` entries and acknowledged them."""
    mine = [g for g in rds.xinfo_groups(stream) if g["name"] == group.encode()]
    return bool(mine) and mine[0]["entries-read"] == total and mine[0]["pending"] == 0


def _key(entry_id: bytes) -> tuple[int, int]:
    ms, seq = entry_id.decode().split("-")
    return int(ms), int(seq)


# -- two consumers, one database ----------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Two fresh databases: SQLite files, or databases on the server of BADGETUI_TEST_POSTGRES
    (dropped afterwards)."""
    if request.param == "sqlite":
        yield [str(tmp_path / "shared.db"), str(tmp_path / "single.db")]
        return
    if not POSTGRES_URL:
        pytest.skip("BADGETUI_TEST_POSTGRES is not set")
    import psycopg2
    from psycopg2 import sql

    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    names = [f"badgetui_bus_{uuid.uuid4().hex[:10]}_{n}" for n in range(2)]
    with admin.cursor() as cur:
        for name in names:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield [f"{base}/{name}" for name in names]
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        admin.close()


def test_two_consumers_match_one_with_penalties_and_revocations(two_databases, rds, stream,
                                                               tmp_path):
    from badgetui.sandbox import Emulator
    from badgetui.sandbox.server import start_in_thread
    from badgetui.services import Services
    from badgetui.settings import Settings
    from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed

    shared_db, reference_db = two_databases
    emulator = Emulator(sandbox_seed(), rng_seed=3)
    base, stop_emulator = start_in_thread(emulator)
    tpls = [t["id"] for t in credly_templates(5)]
    urls = {"credly_api_url": f"{base}/credly/v1/", "accredible_api_url": f"{base}/accredible/v1/"}
    # The storm shape: about ten events per learner, a fifth of them failing, so badges are
    # awarded, revoked and earned again; a learner's final state depends on the order of their
    # events, which two consumers must keep however the group splits the stream between them.
    events = storm_events(len(tpls), 3000, 300, seed=11, redelivered=200)
    try:
        for url in (shared_db, reference_db):
            services = Services.open(Settings(db=url, **urls))
            asyncio.run(services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key"))
            asyncio.run(services.sync.sync(None))
            services.config.import_text(storm_config(tpls))
            services.close()

        def env(db: str, **extra: str) -> dict[str, str]:
            return bus_env(db, tmp_path, stream, BADGETUI_CREDLY_API_URL=urls["credly_api_url"],
                           BADGETUI_ACCREDIBLE_API_URL=urls["accredible_api_url"],
                           BADGETUI_BUS_BATCH="50", BADGETUI_DELIVERY_BASE_DELAY="0.1",
                           BADGETUI_DELIVERY_LEASE="5", **extra)

        # Both consumers are reading before the first entry arrives, so that each takes a share
        # however slowly either starts; they are stopped (SIGTERM) once everything is done.
        procs = [consumer_process(env(shared_db, BADGETUI_BUS_CONSUMER=f"pod-{n}"),
                                  "--deliver", "--json") for n in (1, 2)]
        try:
            deadline = time.monotonic() + 60
            while len(_consumers(rds, stream)) < 2:
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                    [p.communicate() for p in procs if p.poll() is not None]
                time.sleep(0.05)
            produce(rds, stream, *events)
            started = time.monotonic()
            deadline = started + 600
            open_jobs = "SELECT COUNT(*) FROM delivery_job WHERE state IN ('queued', 'running')"
            while not (_read_all(rds, stream, len(events))
                       and db_count(shared_db, open_jobs) == 0):
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
                time.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        counts = [json.loads(out) for out, _ in outputs]
        assert all(c["processed"] > 0 for c in counts), counts  # both took a share
        assert sum(c["processed"] for c in counts) == 3000, counts
        assert sum(c["duplicate"] for c in counts) == 200, counts
        assert sum(c["dead_lettered"] for c in counts) == 0, counts
        assert pending(rds, stream) == 0

        ref = consumer_process(env(reference_db, BADGETUI_BUS_GROUP="single"), "--drain",
                               "--json")
        out, err = ref.communicate(timeout=600)
        assert ref.returncode == 0, err
        single_counts = json.loads(out)
        assert single_counts["processed"] == 3000
        assert sum(c["awarded"] for c in counts) == single_counts["awarded"]
        assert sum(c["revoked"] for c in counts) == single_counts["revoked"]

        def outcome(url: str) -> tuple[list[Any], ...]:
            services = Services.open(Settings(db=url, **urls))
            try:
                badges = sorted((b.learner.username, b.template.external_id, b.status,
                                 b.external_id or "") for b in Badge.select())
                progress = sorted((p.learner.username, p.template.external_id,
                                   p.fulfilled_groups, p.complete, p.badge_id is not None)
                                  for p in Progress.select())
                fulfilled = sorted((f.progress.learner.username, f.progress.template.external_id,
                                    f.requirement.key, f.event_id) for f in Fulfillment.select())
                return badges, progress, fulfilled
            finally:
                services.close()

        shared, shared_progress, shared_fulfilled = outcome(shared_db)
        single, single_progress, single_fulfilled = outcome(reference_db)
        assert [b[:3] for b in shared] == [b[:3] for b in single]
        assert shared_progress == single_progress
        assert shared_fulfilled == single_fulfilled
        statuses = Counter(b[2] for b in shared)
        assert statuses["awarded"] > 100 and statuses["revoked"] > 50, statuses

        # Each badge reached the provider once: one remote badge per issued badge, revoked
        # there when revoked here, never two live ones for a learner and template.
        remote = [b for b in emulator.state()["credly"]["badges"]
                  if b["badge_template_id"] in tpls]
        remote_state = {b["id"]: b["state"] for b in remote}
        assert len(remote_state) == len(remote)
        issued = {b[3]: b[2] for b in shared if b[3]}
        assert set(remote_state) == set(issued)
        assert all(b[3] for b in shared if b[2] == "awarded")
        assert all((remote_state[i] == "revoked") == (s == "revoked") for i, s in issued.items())
        live = Counter((b["issuer_earner_id"], b["badge_template_id"]) for b in remote
                       if b["state"] != "revoked")
        assert all(n == 1 for n in live.values()), live.most_common(3)
        print(f"two consumers: {3200 / elapsed:,.0f} entries/s incl. delivery; "
              f"shares {[c['processed'] for c in counts]}; waited "
              f"{[c['waited_ms'] for c in counts]} ms; badges {dict(statuses)}")
    finally:
        stop_emulator()
