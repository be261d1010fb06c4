"""Dead letters (openedx-events.md §7.2): list, show, replay and drop, against a real Redis.

Entries reach the dead-letter stream the way they do in production: the consumer reads them
from a stream of this test's own and moves them there (malformed ones at once, failing ones
after their attempts). Both streams are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from badgetui.cli import main
from badgetui.domain.events import BADGE_AWARDED, COURSE_PASSING
from badgetui.services.bus import utc_time
from badgetui.services.bus.dlq import DeadLetters, UnknownEntry, safe_text
from badgetui.services.common import ServiceError
from badgetui.store.models import Badge, DeliveryJob, IntakeRecord, OutgoingEvent
from tests.bus_helpers import REDIS_URL, bus_config, consume, entry, produce, redis_or_skip
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    requirement,
    rule,
    table_snapshot,
    template_config,
)
from tests.test_avro import V1

INJECTED = "processing failed 2 times: RuntimeError: injected failure"


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def stream(rds: redis.Redis) -> Iterator[str]:
    """A stream of this test's own; it and its dead-letter stream are deleted afterwards."""
    name = f"badgetui-test-dlq-{uuid.uuid4().hex[:12]}"
    yield name
    rds.delete(name, f"{name}-badgetui-dlq")


@pytest.fixture
def dlq_name(stream: str) -> str:
    return f"{stream}-badgetui-dlq"


@pytest.fixture
def template(services: Any, synced: Any) -> None:
    """t1 needs demo and other passed: ada's badge needs both of her events."""
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                    group="A"),
        requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                    group="B"),
    ])))


@pytest.fixture
def flaky(services: Any, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Processing fails for the events whose id is in `ids` until `broken` is cleared (the
    cause is fixed), as a provider-side bug or a bad deploy would make it."""
    real = services.processor.process
    state = SimpleNamespace(ids=set(), broken=True)

    def process(events: Any, source: str) -> Any:
        if state.broken and any(e.id in state.ids for e in events):
            raise RuntimeError("injected failure")
        return real(events, source)

    monkeypatch.setattr(services.processor, "process", process)
    return state


@pytest.fixture
def letters(services: Any, rds: redis.Redis, stream: str) -> DeadLetters:
    return DeadLetters(rds, bus_config(stream), services.intake, services.clock)


def dead_letter(services: Any, rds: redis.Redis, stream: str,
                *fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """Produce the entries and consume them (two attempts each); {event id: DLQ entry id} of
    what the consumer dead-lettered, keyed by the original `id` field."""
    for one in fields:
        rds.xadd(stream, one)
    consume(services, stream, max_attempts=2)
    return {f.get(b"id", b""): eid for eid, f in rds.xrange(f"{stream}-badgetui-dlq")}


def dlq_entries(rds: redis.Redis, name: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return rds.xrange(name)


def awarded() -> list[tuple[str, str, str]]:
    return sorted((b.learner.username, b.template.external_id, b.status)
                  for b in Badge.select())


# -- list and show --------------------------------------------------------------------------
def test_list_and_show_a_malformed_entry(services, template, rds, stream, dlq_name,
                                         letters):
    base = course_event("ada", DEMO, event_id="ok-1")
    v1 = base64.b64decode(V1)
    bad_host = entry(base, id=b"m-host", sourcehost=b"lms-\xff\xfe")
    truncated = entry(base, id=b"m-short", event_data=v1[:-1])
    odd = entry(base, id=b"odd\n\x1b[31m\xff", time=None, source=b"\xe2\x80\x8bzero-width")
    produce(rds, stream, base)
    originals = [rds.xadd(stream, f) for f in (bad_host, truncated, odd)]
    ids = dead_letter(services, rds, stream)
    assert set(ids) == {b"m-host", b"m-short", b"odd\n\x1b[31m\xff"}

    rows = letters.list()
    assert [r.id for r in rows] == [eid.decode() for eid, _ in dlq_entries(rds, dlq_name)]
    assert [r.stream_id for r in rows] == [o.decode() for o in originals]
    host, short, weird = rows
    assert (host.event_type, host.event_id) == (COURSE_PASSING, "m-host")
    assert host.reason == "malformed: field sourcehost is not valid UTF-8"
    assert (host.attempts, host.group, host.consumer) == (1, "badgetui", "test-1")
    assert utc_time(host.time).tzinfo is not None
    assert host.size == len(bad_host[b"event_data"])
    assert "ends before the record" in short.reason
    assert short.size == len(v1) - 1
    # Odd bytes are shown escaped, on one line; nothing crashes.
    assert weird.event_id == "odd\\n\\x1b[31m\\xff"
    assert weird.reason == "malformed: field id is not valid UTF-8"
    assert letters.list(limit=1, offset=1) == [short]
    assert letters.list(limit=5, offset=3) == [] and letters.count() == 3

    shown = letters.show(host.id)
    assert shown.letter == host
    assert shown.fields["sourcehost"] == "lms-\\xff\\xfe"
    assert shown.fields["type"] == COURSE_PASSING and "event_data" not in shown.fields
    assert not any(name.startswith("dlq_") for name in shown.fields)
    # Its event_data is fine: the payload decodes, the entry as a whole is still malformed.
    assert shown.payload == {"course_passing_status": base["data"]["course_passing_status"]}
    assert shown.decode_error is None
    assert shown.malformed == "field sourcehost is not valid UTF-8"

    cut = letters.show(short.id)
    assert cut.payload is None and "ends before the record" in cut.decode_error
    assert cut.event_data_hex == (v1[:-1]).hex()
    odd_shown = letters.show(weird.id)
    assert odd_shown.fields["id"] == "odd\\n\\x1b[31m\\xff"
    assert odd_shown.fields["source"] == "\\u200bzero-width"
    assert "time" not in odd_shown.fields
    assert odd_shown.as_dict()["fields"]["id"] == weird.event_id
    json.dumps(odd_shown.as_dict())  # JSON-ready as it is


def test_list_and_show_a_processing_failure(services, template, rds, stream, letters,
                                            flaky):
    poison = course_event("ada", OTHER, event_id="poison")
    flaky.ids.add("poison")
    ids = dead_letter(services, rds, stream, entry(course_event("ada", DEMO)), entry(poison))
    assert list(ids) == [b"poison"]
    (row,) = letters.list()
    assert (row.event_id, row.attempts, row.reason) == ("poison", 2, INJECTED)
    assert (row.group, row.consumer) == ("badgetui", "test-1")
    shown = letters.show(row.id)
    assert shown.payload == poison["data"] and shown.decode_error is None
    assert shown.malformed is None  # readable: a replay can take it
    assert shown.fields == {"type": COURSE_PASSING, "id": "poison",
                            "source": "openedx/lms/web", "time": poison["time"],
                            "minorversion": "0", "sourcehost": "lms-7f9c",
                            "sourcelib": "11.2.0"}
    # The failure left no record: replaying it later is its first time in.
    assert not IntakeRecord.select().where(IntakeRecord.ref_id == "poison").exists()


def test_safe_text_never_fails():
    assert safe_text(None) is None
    assert safe_text(b"plain text") == "plain text"
    assert safe_text("caf\u00e9".encode()) == "caf\u00e9"
    assert safe_text(b"\xff\x00tab\tend") == "\\xff\\x00tab\\tend"
    assert safe_text(bytes(range(256))).isprintable()


# -- replay ---------------------------------------------------------------------------------
def test_replay_after_the_cause_is_fixed_awards_once_and_empties_the_dlq(
        services, template, rds, stream, dlq_name, letters, flaky):
    flaky.ids.add("ada-other")
    ids = dead_letter(services, rds, stream, entry(course_event("ada", DEMO)),
                      entry(course_event("ada", OTHER, event_id="ada-other")))
    letter_id = ids[b"ada-other"].decode()
    assert awarded() == [] and Counter(r.outcome for r in IntakeRecord.select()) == \
        Counter(processed=1)
    copy = dlq_entries(rds, dlq_name)[0][1]

    # Not fixed yet: the replay fails again, records nothing, and the letter stays.
    before = table_snapshot()
    report = letters.replay([letter_id])
    (failed,) = report.entries
    assert (failed.outcome, failed.removed) == ("failed", False)
    assert failed.reason == "processing failed: RuntimeError: injected failure"
    assert table_snapshot() == before
    assert [eid.decode() for eid, _ in dlq_entries(rds, dlq_name)] == [letter_id]

    flaky.broken = False
    report = letters.replay([letter_id])
    (done,) = report.entries
    assert (done.id, done.event_id, done.outcome, done.awarded, done.revoked, done.removed) \
        == (letter_id, "ada-other", "processed", 1, 0, True)
    assert report.time == "2026-11-01T12:00:00+00:00"
    assert report.as_dict()["processed"] == 1 and report.as_dict()["removed"] == 1
    assert awarded() == [("ada", "t1", "awarded")]
    record = IntakeRecord.get(IntakeRecord.ref_id == "ada-other")
    assert (record.outcome, record.source) == ("processed", f"redis-dlq:{dlq_name}")
    assert record.effects
    assert [(j.kind, j.state) for j in DeliveryJob.select()] == [("issue", "queued")]
    assert [o.event_type for o in OutgoingEvent.select()] == [BADGE_AWARDED]
    assert dlq_entries(rds, dlq_name) == [] and letters.list() == []

    # Again: the entry is gone, nothing changes.
    after = table_snapshot()
    with pytest.raises(UnknownEntry, match=f"no dead letter {letter_id} in {dlq_name}"):
        letters.replay([letter_id])
    assert letters.replay().entries == []
    assert table_snapshot() == after

    # The same letter once more (a crash between commit and delete would leave it): a
    # duplicate, removed, and no second award.
    again = rds.xadd(dlq_name, copy).decode()
    (dup,) = letters.replay([again]).entries
    assert (dup.outcome, dup.reason, dup.awarded, dup.removed) == (
        "duplicate", "already processed", 0, True)
    now = table_snapshot()
    intake = IntakeRecord._meta.table_name
    assert {k: v for k, v in now.items() if k != intake} == \
        {k: v for k, v in after.items() if k != intake}
    assert Counter(r.outcome for r in IntakeRecord.select()) == Counter(processed=2,
                                                                       duplicate=1)
    assert awarded() == [("ada", "t1", "awarded")] and dlq_entries(rds, dlq_name) == []


def test_a_still_malformed_entry_stays_with_its_reason(services, template, rds, stream,
                                                      dlq_name, letters):
    base = course_event("ada", DEMO)
    ids = dead_letter(services, rds, stream, entry(base, id=b"no-time", time=None))
    letter_id = ids[b"no-time"].decode()
    before_db, before_dlq = table_snapshot(), dlq_entries(rds, dlq_name)
    for _ in range(2):
        (kept,) = letters.replay([letter_id]).entries
        assert (kept.outcome, kept.removed) == ("malformed", False)
        assert kept.reason == "malformed: field time is missing"
        assert table_snapshot() == before_db and dlq_entries(rds, dlq_name) == before_dlq


def test_replay_all_takes_what_it_can_in_order(services, template, rds, stream, dlq_name,
                                               letters, flaky):
    flaky.ids.update({"f1", "f2"})
    ids = dead_letter(
        services, rds, stream,
        entry(course_event("bob", DEMO, event_id="f1")),
        entry(course_event("bob", DEMO, event_id="m1"), time=b"2026-11-01T10:00:00+01:00"),
        entry(course_event("bob", OTHER, event_id="f2")),
    )
    assert sorted(ids) == [b"f1", b"f2", b"m1"]
    # Entries the consumer would not dead-letter today, written as it writes them: a type no
    # longer configured (ignored without decoding) and a learner with no username (dropped).
    extra = {b"dlq_reason": b"processing failed 3 times: X", b"dlq_stream_id": b"1-1",
             b"dlq_attempts": b"3", b"dlq_group": b"badgetui", b"dlq_consumer": b"old",
             b"dlq_time": b"2026-11-01T11:00:00+00:00"}
    rds.xadd(dlq_name, {**entry(course_event("x", DEMO), id=b"badge-1",
                                type=BADGE_AWARDED.encode(), event_data=b"\x00junk"), **extra})
    nameless = course_event("", DEMO, event_id="nameless")
    rds.xadd(dlq_name, {**entry(nameless), **extra})
    flaky.broken = False

    order = [eid.decode() for eid, _ in dlq_entries(rds, dlq_name)]
    report = letters.replay()
    assert [e.id for e in report.entries] == order  # oldest first
    done = {e.event_id: (e.outcome, e.removed) for e in report.entries}
    assert done == {"f1": ("processed", True), "m1": ("malformed", False),
                    "f2": ("processed", True), "badge-1": ("ignored", True),
                    "nameless": ("dropped", True)}
    out = report.as_dict()
    assert (out["replayed"], out["removed"], out["kept"], out["awarded"]) == (5, 4, 1, 1)
    assert (out["processed"], out["malformed"], out["ignored"], out["dropped"]) == (2, 1, 1, 1)
    reasons = {e.event_id: e.reason for e in report.entries}
    assert reasons["badge-1"] == "event type not configured"
    assert reasons["nameless"].startswith("no username")
    assert "is not UTC" in reasons["m1"]
    assert awarded() == [("bob", "t1", "awarded")]
    recorded = {r.ref_id: (r.outcome, r.source) for r in IntakeRecord.select()
                if r.source.startswith("redis-dlq:")}
    assert recorded == {"f1": ("processed", f"redis-dlq:{dlq_name}"),
                        "f2": ("processed", f"redis-dlq:{dlq_name}"),
                        "badge-1": ("ignored", f"redis-dlq:{dlq_name}"),
                        "nameless": ("dropped", f"redis-dlq:{dlq_name}")}
    assert [f[b"id"] for _, f in dlq_entries(rds, dlq_name)] == [b"m1"]

    before = table_snapshot()
    (again,) = letters.replay().entries
    assert (again.event_id, again.outcome, again.removed) == ("m1", "malformed", False)
    assert table_snapshot() == before


# -- drop and unknown ids -------------------------------------------------------------------
def test_drop_checks_every_id_first(services, template, rds, stream, dlq_name, letters):
    base = course_event("ada", DEMO)
    dead_letter(services, rds, stream, *[entry(base, id=f"m{n}".encode(), time=None)
                                         for n in range(3)])
    first, second, third = (r.id for r in letters.list())
    with pytest.raises(UnknownEntry, match="no dead letter 9-9 in "):
        letters.drop([first, "9-9"])
    assert len(dlq_entries(rds, dlq_name)) == 3  # nothing dropped
    dropped = letters.drop([third, first, first])
    assert [d.id for d in dropped] == [third, first]
    assert [d.event_id for d in dropped] == ["m2", "m0"]
    assert [eid.decode() for eid, _ in dlq_entries(rds, dlq_name)] == [second]
    with pytest.raises(UnknownEntry, match=first):
        letters.drop([first])


def test_unknown_and_invalid_ids_are_named(letters, dlq_name):
    with pytest.raises(UnknownEntry) as caught:
        letters.show("1700000000000-0")
    assert str(caught.value) == f"no dead letter 1700000000000-0 in {dlq_name}"
    with pytest.raises(UnknownEntry, match="no dead letter 1-0, 2-0 in "):
        letters.replay(["1-0", "2-0"])
    with pytest.raises(ServiceError, match='not a stream entry id: "abc"'):
        letters.show("abc")
    with pytest.raises(ServiceError, match='not a stream entry id: "1-2-3"'):
        letters.drop(["1-2-3"])


# -- the command line -----------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], stream: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["events", "dlq", *args, "--redis", REDIS_URL, "--stream", stream])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_end_to_end(services, template, rds, stream, dlq_name, flaky, db_url,
                        monkeypatch, capsys):
    flaky.ids.add("ada-other")
    ids = dead_letter(services, rds, stream, entry(course_event("ada", DEMO)),
                      entry(course_event("ada", OTHER, event_id="ada-other")),
                      entry(course_event("bob", DEMO, event_id="bad"), event_data=b"\x02"))
    failure, broken = ids[b"ada-other"].decode(), ids[b"bad"].decode()
    monkeypatch.setenv("BADGETUI_DB", db_url)

    order = [eid.decode() for eid in ids.values()]
    assert sorted(order) == sorted([failure, broken])

    rc, out, _ = cli(capsys, stream, "list", "--json")
    assert rc == 0
    listed = json.loads(out)
    assert [r["id"] for r in listed] == order
    rows = {r["id"]: r for r in listed}
    assert all(set(r) == {"id", "stream_id", "event_type", "event_id", "reason", "attempts",
                          "group", "consumer", "time", "size"} for r in listed)
    assert (rows[failure]["reason"], rows[failure]["attempts"]) == (INJECTED, 2)
    assert rows[broken]["reason"].startswith("malformed: event_data")
    assert (rows[broken]["attempts"], rows[broken]["size"]) == (1, 1)

    rc, out, _ = cli(capsys, stream, "list")
    assert rc == 0
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["ID", "STREAM", "ID"]
    assert [line.split()[0] for line in lines] == order
    assert INJECTED in lines[order.index(failure)]

    rc, out, _ = cli(capsys, stream, "show", failure, "--json")
    shown = json.loads(out)
    assert rc == 0 and shown["id"] == failure and shown["malformed"] is None
    assert shown["payload"]["course_passing_status"]["user"]["pii"]["username"] == "ada"
    rc, out, _ = cli(capsys, stream, "show", broken)
    assert rc == 0 and "payload: does not decode: event_data" in out
    assert "event_data (hex): 02" in out and "still malformed" in out

    # The CLI's services are fresh: the injected failure is gone, as after a fix and restart.
    rc, out, _ = cli(capsys, stream, "replay", "--all", "--no-deliver")
    assert rc == 0
    lines = out.splitlines()
    per_entry = {line.split(":")[0]: line for line in lines[:2]}
    assert list(per_entry) == order
    assert per_entry[failure] == (f"{failure}: processed, event ada-other "
                                  f"({COURSE_PASSING}): awarded 1; removed")
    assert per_entry[broken].startswith(f"{broken}: malformed, event bad ({COURSE_PASSING}): "
                                        "malformed: event_data")
    assert per_entry[broken].endswith("; kept in the dead-letter stream")
    assert lines[2] == (f"replayed 2 from {dlq_name}: processed 1, ignored 0, dropped 0, "
                        "duplicate 0, rejected 0, malformed 1, failed 0, awarded 1, revoked 0; "
                        "removed 1, kept 1")
    assert lines[3] == "delivery: 1 provider jobs queued (run `badgetui deliver`)"
    assert awarded() == [("ada", "t1", "awarded")]
    assert [eid.decode() for eid, _ in dlq_entries(rds, dlq_name)] == [broken]

    before = table_snapshot()
    rc, out, _ = cli(capsys, stream, "replay", "--all", "--no-deliver", "--json")
    body = json.loads(out)
    assert rc == 0 and (body["replayed"], body["malformed"], body["removed"]) == (1, 1, 0)
    assert body["queued_jobs"] == 1 and body["delivery"] is None
    assert [e["id"] for e in body["entries"]] == [broken]
    assert set(body["entries"][0]) == {"id", "stream_id", "event_type", "event_id", "outcome",
                                       "reason", "awarded", "revoked", "removed"}
    rc, _, err = cli(capsys, stream, "replay", failure, "--no-deliver")
    assert rc == 1 and err == f"badgetui: error: no dead letter {failure} in {dlq_name}\n"
    assert table_snapshot() == before

    rc, out, _ = cli(capsys, stream, "drop", broken, "--json")
    assert rc == 0
    dropped = json.loads(out)
    assert (dropped["dlq_stream"], dropped["dropped"]) == (dlq_name, 1)
    assert [d["event_id"] for d in dropped["entries"]] == ["bad"]
    assert dlq_entries(rds, dlq_name) == []
    rc, out, _ = cli(capsys, stream, "list")
    assert rc == 0 and out == f"no dead letters in {dlq_name}\n"
    assert table_snapshot() == before


def test_cli_drop_human_output_and_errors(services, template, rds, stream, dlq_name, db_url,
                                          monkeypatch, capsys):
    base = course_event("ada", DEMO)
    ids = dead_letter(services, rds, stream, entry(base, id=b"m1", time=None),
                      entry(base, id=b"m2", time=None))
    monkeypatch.setenv("BADGETUI_DB", db_url)
    one, two = ids[b"m1"].decode(), ids[b"m2"].decode()
    rc, out, _ = cli(capsys, stream, "drop", one, two)
    assert rc == 0
    assert out.splitlines() == [f"{one}: dropped, event m1 ({COURSE_PASSING})",
                                f"{two}: dropped, event m2 ({COURSE_PASSING})",
                                f"dropped 2 from {dlq_name}"]
    assert dlq_entries(rds, dlq_name) == []
    rc, _, err = cli(capsys, stream, "show", "nonsense")
    assert rc == 1 and err.startswith('badgetui: error: not a stream entry id: "nonsense"')
    assert err.count("\n") == 1
    # Neither ids nor --all, or both: a usage error.
    for args in (["replay"], ["replay", one, "--all"]):
        with pytest.raises(SystemExit) as usage:
            cli(capsys, stream, *args)
        assert usage.value.code == 2
        assert "give the entry ids to replay, or --all" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli(capsys, stream, "drop")
    assert usage.value.code == 2
    # No Redis URL at all (no --redis, no setting): one line.
    capsys.readouterr()
    assert main(["events", "dlq", "list"]) == 1
    assert capsys.readouterr().err == ("badgetui: error: no Redis URL: pass --redis URL or set "
                                       "BADGETUI_REDIS_URL\n")


def test_cli_redis_down_is_one_line(db_url, monkeypatch, capsys):
    monkeypatch.setenv("BADGETUI_DB", db_url)
    rc = main(["events", "dlq", "list", "--redis", "redis://127.0.0.1:1/0", "--stream", "s"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("badgetui: error: redis: ") and err.count("\n") == 1


def test_cli_replay_delivers_unless_told_not_to(make_services, rds, stream, dlq_name,
                                               monkeypatch, capsys):
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
        real = services.processor.process

        def failing(events: Any, source: str) -> Any:
            if any(e.id and e.id.startswith("u") for e in events):
                raise RuntimeError("injected failure")
            return real(events, source)

        monkeypatch.setattr(services.processor, "process", failing)
        dead_letter(services, rds, stream, *[
            entry(course_event(f"learner{n}", DEMO, event_id=f"u{n}", uid=100 + n))
            for n in range(3)])
        assert len(dlq_entries(rds, dlq_name)) == 3
        monkeypatch.setenv("BADGETUI_DB", services.settings.db)
        monkeypatch.setenv("BADGETUI_CREDLY_API_URL", f"{base}/credly/v1/")
        monkeypatch.setenv("BADGETUI_DELIVERY_BASE_DELAY", "0.1")
        rc, out, _ = cli(capsys, stream, "replay", "--all", "--json")
        assert rc == 0
        body = json.loads(out)
        assert (body["processed"], body["awarded"], body["removed"]) == (3, 3, 3)
        assert body["delivery"]["issued"] == 3 and body["queued_jobs"] == 0
        remote = [b for b in emulator.state()["credly"]["badges"]
                  if b["badge_template_id"] == tpl]
        assert len(remote) == 3
        assert {j.state for j in DeliveryJob.select()} == {"done"}
        assert sorted(b.external_id for b in Badge.select()) == sorted(b["id"] for b in remote)
        assert dlq_entries(rds, dlq_name) == []
    finally:
        stop_emulator()


def test_dead_letter_time_is_utc(services, template, rds, stream, letters):
    dead_letter(services, rds, stream, entry(course_event("ada", DEMO), time=None))
    (row,) = letters.list()
    assert utc_time(row.time).astimezone(UTC) == services.clock()
