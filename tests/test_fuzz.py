"""Fuzzing the three ways events come in (issue "Robust intake and bus: no input can abort a
run"): `badgetui events ingest FILE`, the Redis Streams consumer and the Credly webhook
receiver, on SQLite and (with BADGETUI_TEST_POSTGRES) PostgreSQL.

The strategies follow the event grammar of formats.md and openedx-events.md §2: a valid course
passing event (flat, or the bus envelope) is taken apart and mutated: any node replaced by a
value of another type or a hostile one (integers beyond 64 bits, NULs, lone surrogates, control
characters, line separators, long strings), keys removed or added, values nested thousands of
levels deep, the line cut short, invalid UTF-8 bytes, BOMs, CRLF. Many fuzzed cases share one
file, stream or receiver per example (database set-up is the expensive part), interleaved with
good events that must all come through. Every run counts its cases; the counts are printed at
the end of the module ("fuzz: ...").
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import random
import re
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from badgetui.cli import main
from badgetui.domain import avro
from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.services.bus import BusConsumer
from badgetui.services.lines import MAX_LINE, BadLine, read_lines
from badgetui.services.webhooks import WEBHOOK_PATH, webhook_app
from badgetui.store.models import Badge, IntakeRecord, db
from tests.bus_helpers import bus_config, entry, pending, redis_or_skip
from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed
from tests.helpers import (
    DEMO,
    config_text,
    course_event,
    jsonl,
    requirement,
    rule,
    template_config,
)
from tests.test_avro import V1, V3

FUZZ = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])

#: Cases run per path (and good events checked), printed at the end of the module.
CASES: Counter[str] = Counter()
_ids = itertools.count(1)

#: The longest line a problem report may be (file name and line number included).
REPORT_LIMIT = 400


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not CASES:
        return
    text = "fuzz: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{text}")


# -- the grammar -------------------------------------------------------------------------------
def good_event(username: str, event_id: str, *, envelope: bool = False,
               ccx: bool = False) -> dict[str, Any]:
    """A valid course (or CCX) passing event in the JSON Lines shape, flat or as an envelope."""
    user = {"id": 7, "is_active": True,
            "pii": {"username": username, "email": f"{username}@example.org",
                    "name": "Learner Seven"}}
    if ccx:
        record: dict[str, Any] = {
            "is_passing": True, "user": user,
            "course": {"ccx_course_key": "ccx-v1:edX+DemoX+Demo_Course+ccx@1",
                       "master_course_key": DEMO, "display_name": "", "coach_email": "",
                       "start": None, "end": None, "max_students_allowed": None}}
        event_type = CCX_COURSE_PASSING
    else:
        record = {"is_passing": True,
                  "course": {"course_key": DEMO, "display_name": "Demo", "start": None,
                             "end": None},
                  "user": user}
        event_type = COURSE_PASSING
    time = "2026-11-01T09:00:01+00:00"
    data = {"course_passing_status": record}
    if envelope:
        return {"metadata": {"id": event_id, "event_type": event_type, "time": time,
                             "source": "openedx/lms/web", "minorversion": 0,
                             "sourcelib": [11, 2, 0]}, "data": data}
    return {"id": event_id, "event_type": event_type, "time": time, "data": data}


Path = tuple[str | int, ...]


def node_paths(node: Any, here: Path = ()) -> list[Path]:
    """Every position in a JSON value (the root is `()`)."""
    out = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            out += node_paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += node_paths(value, (*here, index))
    return out


def _at(node: Any, path: Path) -> Any:
    for part in path:
        node = node[part]
    return node


HOSTILE_CHARS = ["\x00", "\ud800", "\udfff", "\udbff\udc00", "\x1b[2J", "\n", "\r", "\u2028",
                 "\ufeff", "\x7f", "\u0085", "\U0010ffff", "\ufffd", "é", "😀", '"', "\\"]
HOSTILE_INTS = [10**100, -(2**64), 2**63, -(2**63) - 1, 2**63 - 1, -(2**63), 2**64, 0, -1]

hostile_text = st.one_of(
    st.lists(st.one_of(st.characters(), st.sampled_from(HOSTILE_CHARS)), max_size=30)
    .map("".join),
    st.builds(lambda c, n: c * n, st.sampled_from([*HOSTILE_CHARS, "x"]),
              st.sampled_from([1, 129, 256, 5_000, 70_000])),
    st.sampled_from(["", " ", "course-v1:edX+DemoX+Demo_Course", "2026-11-01 09:00",
                     "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00",
                     "2026-11-01T09:00:00", "true", "null", "NaN"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(HOSTILE_INTS), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), hostile_text,
)
hostile_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(hostile_text, inner, max_size=3)),
    max_leaves=6,
)

#: Raw-text stand-in replaced after serializing (values no JSON encoder writes).
DEEP = "\u0000@@deep@@"
DEPTHS = [63, 64, 65, 200, 985, 990, 995, 1000, 3000, 20_000]
BAD_BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
             b"\xe2\x82", b"\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xef\xbb\xbf"]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """`base` (a JSON value) with one to three nodes changed."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = node_paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "deep"]))
        value = DEEP + str(draw(st.sampled_from(DEPTHS))) if op == "deep" else \
            draw(hostile_values)
        if not path:
            if op in ("replace", "deep"):
                doc = value
            continue
        parent = _at(doc, path[:-1])
        if not isinstance(parent, dict | list):
            continue
        if op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(hostile_text)] = value
        else:
            parent[path[-1]] = value
    return doc


def serialize(doc: Any, *, ascii_only: bool) -> bytes:
    """JSON text of a mutated event as bytes: lone surrogates as escapes, or (not ASCII) as
    the bytes UTF-8 cannot hold; deep stand-ins become thousands of brackets."""
    text = json.dumps(doc, ensure_ascii=ascii_only)

    def deep(match: re.Match[str]) -> str:
        depth = int(match.group(1))
        return ('{"a":' * depth + "1" + "}" * depth) if depth % 2 else \
            ("[" * depth + "]" * depth)

    text = re.sub(r'"\\u0000@@deep@@(\d+)"', deep, text)
    text = re.sub("\"\x00@@deep@@(\\d+)\"", deep, text)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def raw_line(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """One fuzzed line (no newline in it): a mutated event, then maybe raw-byte damage."""
    doc = draw(mutated(base)) if draw(st.integers(0, 9)) else base
    data = serialize(doc, ascii_only=draw(st.booleans()))
    damage = draw(st.sampled_from(["none", "none", "truncate", "bytes", "bom", "garbage",
                                   "text", "crlf", "nan"]))
    if damage == "truncate" and len(data) > 1:
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif damage == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "garbage":
        data = draw(st.binary(min_size=1, max_size=300))
    elif damage == "text":
        data = draw(hostile_text).encode("utf-8", "surrogatepass")
    elif damage == "crlf":
        data += b"\r"
    elif damage == "nan":
        data = data.replace(b"7", b"NaN", 1).replace(b"true", b"Infinity", 1)
    return data.replace(b"\n", b"\\n")  # one line each: numbering is what is checked


def fuzz_base(envelope: bool, ccx: bool) -> dict[str, Any]:
    return good_event("fz-learner", "fz-event", envelope=envelope, ccx=ccx)


fuzz_lines = st.lists(
    st.tuples(st.booleans(), st.booleans()).flatmap(lambda f: raw_line(fuzz_base(*f))),
    min_size=8, max_size=30,
)


def _mb_line(size: int, where: str) -> bytes:
    event = good_event("fz-learner", f"fz-big-{where}")
    if where == "name":
        event["data"]["course_passing_status"]["user"]["pii"]["name"] = "n" * size
    elif where == "display_name":
        event["data"]["course_passing_status"]["course"]["display_name"] = "d" * size
    elif where == "id":
        event["id"] = "i" * size
    elif where == "time":
        event["time"] = "t" * size
    return json.dumps(event).encode()


HUGE_EXAMPLES = [
    [_mb_line(3_000_000, "display_name"), _mb_line(2_000_000, "name"),
     _mb_line(1_000_000, "id"), _mb_line(4_000_000, "time")],
    [b"[" * 2_000_000, b'{"a":' * 500_000, b"\xff" * 1_000_000,
     serialize(good_event("fz-learner", "\ud800" * 100_000), ascii_only=True)],
    [b'{"id": "' + b"x" * (MAX_LINE + 10) + b'"}', b" " * (MAX_LINE - 1),
     b"\x00" * 1_000_000, _mb_line(MAX_LINE - 1000, "display_name")],
]


#: Values put at every position of every base event (wrong types, edges of every range).
EDGE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, float("nan"), float("inf"), "", " ", "x", [], {}, [1],
    {"a": 1}, *HOSTILE_INTS, "\x00", "a\x00b", "\ud800", "\udfff x", "\x1b[31m\n", "\u2028",
    "a" * 129, "a" * 256, "a" * 1024, "a" * 1025, "é" * 512, "é" * 513, "\x00" * 342,
    "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000)),
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00", "2026-02-30T00:00:00Z",
    "2026-11-01T09:00:00+23:59", "2026-11-01T09:00:00", "course-v1:edX+DemoX+Demo_Course",
]


def every_position() -> list[bytes]:
    """Each base event with each position replaced by each edge value, and with each key
    removed: wrong types and edge values everywhere, systematically."""
    out = []
    for n, base in enumerate([fuzz_base(False, False), fuzz_base(True, False),
                              fuzz_base(False, True)]):
        for path in node_paths(base)[1:]:
            for value in [*EDGE_VALUES, "delete"]:
                doc = json.loads(json.dumps(base))
                parent = _at(doc, path[:-1])
                if value == "delete":
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = value
                out.append(serialize(doc, ascii_only=n != 1))
    return out


# -- a. `badgetui events ingest FILE` ------------------------------------------------------------
def _configure(services: Any, synced: Any) -> None:
    synced("t-fuzz")
    services.config.import_text(config_text(template_config("t-fuzz", [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                    group="A"),
        requirement("ccx", rule("is_passing", "true"), rule("course.master_course_key", DEMO),
                    group="A", event_type=CCX_COURSE_PASSING),
    ])))


def _expected_blank(line: bytes) -> bool:
    """Whether intake skips the line (blank after decoding) rather than recording it."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(line) <= MAX_LINE and not text.strip()


#: Outcomes of every fuzzed line per backend, for the cross-backend comparison.
_OUTCOMES: dict[str, list[list[tuple[str, str]]]] = {}


def test_ingest_file_survives_fuzzed_lines(backend, services, synced, db_url, tmp_path,
                                           monkeypatch, capsys):
    _configure(services, synced)
    services.close()
    monkeypatch.setenv("BADGETUI_DB", db_url)
    seen: list[list[tuple[str, str]]] = []
    _OUTCOMES[backend] = seen

    @settings(FUZZ, max_examples=60)
    @given(fuzzed=fuzz_lines, goods=st.integers(2, 6), layout=st.randoms(use_true_random=False),
           crlf=st.booleans(), bom=st.booleans())
    @example(fuzzed=HUGE_EXAMPLES[0], goods=2, layout=random.Random(1), crlf=False, bom=True)
    @example(fuzzed=HUGE_EXAMPLES[1], goods=2, layout=random.Random(2), crlf=True, bom=False)
    @example(fuzzed=HUGE_EXAMPLES[2], goods=2, layout=random.Random(3), crlf=False, bom=False)
    @example(fuzzed=every_position(), goods=4, layout=random.Random(4), crlf=False, bom=False)
    def check(fuzzed: list[bytes], goods: int, layout: random.Random, crlf: bool,
              bom: bool) -> None:
        n = next(_ids)
        good = [good_event(f"good-{n}-{i}", f"good-{n}-{i}", envelope=i % 2 == 1,
                           ccx=i % 3 == 2) for i in range(goods)]
        lines = [("good", json.dumps(e).encode()) for e in good]
        for line in fuzzed:
            lines.insert(layout.randint(1, len(lines)), ("fuzz", line))  # line 1 stays good
        end = b"\r\n" if crlf else b"\n"
        path = tmp_path / f"events-{n}.jsonl"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + end.join(t for _, t in lines)
                         + end)
        capsys.readouterr()
        rc = main(["events", "ingest", str(path), "--no-deliver", "--json"])
        out, err = capsys.readouterr()
        db.obj.close()
        CASES["cli fuzzed lines"] += len(fuzzed)
        CASES["cli good events"] += goods
        assert rc == 0, err[-2000:]
        assert "Traceback" not in err and "badgetui: error" not in err, err[-2000:]
        counts = json.loads(out)
        recorded = {r.line: r for r in IntakeRecord.select().where(
            IntakeRecord.source == str(path))}
        reported: dict[int, str] = {}
        for report in err.splitlines():
            assert len(report) <= REPORT_LIMIT, report[:500]
            match = re.fullmatch(re.escape(str(path)) + r":(\d+): (rejected|dropped): (.+)",
                                 report)
            assert match, report[:500]
            reported[int(match.group(1))] = match.group(2)
        outcomes = []
        for number, (kind, text) in enumerate(lines, start=1):
            row = recorded.get(number)
            if kind == "good":
                assert row is not None and row.outcome == "processed", (number, row and
                                                                         row.reason)
                continue
            if _expected_blank(text):
                assert row is None and number not in reported
                outcomes.append(("blank", ""))
                continue
            assert row is not None, f"line {number} left no intake record"
            assert len(row.reason) <= 300
            if row.outcome in ("rejected", "dropped"):
                assert reported.get(number) == row.outcome, (number, row.reason)
                assert row.reason
            else:
                assert number not in reported
            outcomes.append((row.outcome, row.reason))
        assert set(reported) <= set(recorded)
        assert sum(counts[k] for k in ("processed", "ignored", "dropped", "duplicate",
                                       "rejected")) == len(recorded)
        held = {b.learner.username for b in Badge.select() if b.status == "awarded"}
        assert {f"good-{n}-{i}" for i in range(goods)} <= held
        seen.append(outcomes)

    check()
    other = _OUTCOMES.get("sqlite" if backend == "postgres" else "postgres")
    if other is not None:  # both backends ran: the same lines, the same outcomes and reasons
        assert other == seen


def test_ingest_survives_every_nesting_depth(backend, services, synced, db_url, tmp_path,
                                             monkeypatch, capsys):
    """Objects and arrays nested at every depth up to past the recursion limit, with an id and
    without one (hashed): how deep the stack already is must not matter (hypothesis raises
    the limit while it runs, so this sweep runs outside it)."""
    _configure(services, synced)
    services.close()
    monkeypatch.setenv("BADGETUI_DB", db_url)
    lines = [json.dumps(good_event("deep-ann", "deep-good")).encode()]
    for depth in range(20, sys.getrecursionlimit() + 50):
        for with_id in (True, False):
            for value in (b'{"a": ' * depth + b"1" + b"}" * depth, b"[" * depth + b"]" * depth):
                start = b'{"id": "fz-deep-%d-%d", ' % (depth, len(value)) if with_id else b"{"
                lines.append(start + b'"event_type": "%s", "x": ' % COURSE_PASSING.encode()
                             + value + b"}")
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"\n".join(lines))
    rc = main(["events", "ingest", str(path), "--no-deliver", "--json"])
    out, err = capsys.readouterr()
    db.obj.close()
    CASES["cli fuzzed lines"] += len(lines) - 1
    CASES["cli good events"] += 1
    assert rc == 0, err[-2000:]
    assert json.loads(out)["rejected"] == len(lines) - 1
    reasons = Counter(line.split(": ", 2)[2] for line in err.splitlines())
    assert set(reasons) <= {"data is missing", "nested deeper than 64 levels",
                            "not JSON (nested too deeply)"}, reasons
    assert Badge.get().learner.username == "deep-ann"


def test_ingest_stdin_reads_bytes_strictly(services, synced, db_url, monkeypatch, capsys):
    """stdin goes through the same reader: a bad byte rejects its line, never alters a name."""
    _configure(services, synced)
    services.close()
    monkeypatch.setenv("BADGETUI_DB", db_url)
    good = json.dumps(good_event("ann", "s1")).encode()
    bad = json.dumps(good_event("bob-X", "s2")).encode().replace(b"X", b"\xff")
    stdin = io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + good + b"\r\n" + bad + b"\n"))
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["events", "ingest", "-", "--no-deliver", "--json"]) == 0
    out, err = capsys.readouterr()
    db.obj.close()
    assert json.loads(out)["processed"] == 1
    at = bad.index(b"\xff") + 1
    assert err.splitlines() == [f"stdin:2: rejected: line is not valid UTF-8 (byte {at} is 0xff)"]
    assert [b.learner.username for b in Badge.select()] == ["ann"]


def test_reader_bounds_lines_and_reports_each_once():
    """The reader alone: a line over the limit is one bad line, skipped up to its newline,
    whatever the chunk size; CRLF and a leading BOM are dropped; bad UTF-8 is named."""
    data = (b"\xef\xbb\xbfone\r\n" + b"x" * 50 + b"\ntwo\n" + b"y" * 11 + b"\r\n"
            + b"z" * 10 + b"\r\nbad\xc3(\n" + b"w" * 30)
    for chunk in (1, 3, 7, 64, 10_000):
        got = list(read_lines(io.BytesIO(data), max_line=10, chunk=chunk))
        shown = [g if isinstance(g, str) else g.reason for g in got]
        assert shown == ["one", "line is longer than 10 bytes", "two",
                         "line is longer than 10 bytes", "z" * 10,
                         "line is not valid UTF-8 (byte 4 is 0xc3)",
                         "line is longer than 10 bytes"], chunk
        assert all(len(g.preview) <= 2000 for g in got if isinstance(g, BadLine))
    assert list(read_lines(io.BytesIO(b""))) == []
    assert list(read_lines(io.BytesIO(b"\n\n"))) == ["", ""]
    assert [getattr(g, "reason", g) for g in read_lines(io.BytesIO(b"a\xe2\x82"))] == [
        "line is not valid UTF-8 (it ends inside a character at byte 2)"]


# -- b. the Redis Streams consumer ----------------------------------------------------------------
def _fields_of(event: dict[str, Any]) -> dict[bytes, bytes]:
    return entry({"event_type": event["event_type"], "id": event["id"], "time": event["time"],
                  "data": event["data"]})


def _varint(value: int) -> bytes:
    """Avro's zig-zag varint of any integer (also beyond 64 bits, which no writer sends)."""
    zigzag = (value << 1) if value >= 0 else ((-value) << 1) - 1
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _avro_string(text: bytes) -> bytes:
    return _varint(len(text)) + text


def _crafted_avro(user_id: int, username: bytes, course: bytes = DEMO.encode()) -> bytes:
    """Course passing Avro written by hand (CoursePassingStatusData in wire order)."""
    return (b"\x01" + _avro_string(course) + _avro_string(b"") + b"\x00\x00"
            + _varint(user_id) + b"\x01" + _avro_string(username)
            + _avro_string(b"x@example.org") + _avro_string(b""))


FIELD_NAMES = [b"type", b"id", b"source", b"time", b"minorversion", b"sourcehost",
               b"sourcelib", b"event_data"]
V1_BYTES, V3_BYTES = base64.b64decode(V1), base64.b64decode(V3)

field_values = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"\xff\xfe", b"\x00", b"0", b"-1", b"99999999999", b"1e9",
                     "²".encode(), "٣".encode(),
                     b"2026-11-01T09:00:00Z", b"2026-11-01T10:00:00+01:00",
                     b"0001-01-01T00:00:00+00:00", b"9999-12-31T23:59:59.999999+00:00",
                     COURSE_PASSING.encode(), CCX_COURSE_PASSING.encode(),
                     b"org.openedx.learning.badge.awarded.v1", b"x" * 300, b"\x00" * 200,
                     b"y" * 1_000_000]),
    hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@st.composite
def avro_payloads(draw: st.DrawFn) -> bytes:
    """`event_data`: damaged real bytes, hand-written records with hostile values, garbage."""
    kind = draw(st.sampled_from(["truncated", "extended", "flipped", "garbage", "crafted",
                                 "encoded", "wrong"]))
    if kind == "truncated":
        return V1_BYTES[: draw(st.integers(0, len(V1_BYTES) - 1))]
    if kind == "extended":
        return V1_BYTES + draw(st.binary(min_size=1, max_size=8))
    if kind == "flipped":
        data = bytearray(V1_BYTES)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "wrong":
        return V3_BYTES
    if kind == "crafted":
        user_id = draw(st.sampled_from([*HOSTILE_INTS, 2**70, -(2**100)]))
        name = draw(st.sampled_from([b"fz", b"", b"\x00", b"a\x00b", b"\xff", b"\xed\xa0\x80",
                                     b"n" * 300, b"\x1b[2J\n", b"m" * 1_000_000]))
        return _crafted_avro(user_id, name)
    # a payload the encoder accepts, with NULs, control characters and long strings
    text = draw(st.text(alphabet=st.one_of(st.characters(blacklist_categories=["Cs"]),
                                           st.sampled_from(["\x00", "\n", "\x1b"])),
                        max_size=20))
    size = draw(st.sampled_from([0, 0, 200, 300, 100_000]))
    event = good_event("fz-" + text + "u" * size, "x")
    event["data"]["course_passing_status"]["course"]["display_name"] = text * 3
    return avro.encode(COURSE_PASSING, event["data"])


EDGE_FIELDS: list[bytes | None] = [
    None, b"", b"\xff\xfe", b"\x00", b"a\x00b", b"\xed\xa0\x80", b"\x1b[2J\n", b"0", b"-1",
    b"99999999999", "²".encode(), "١".encode(), "𝟗".encode(), b" 0 ", b"+0", b"0x1",
    b"2026-11-01T09:00:00Z", b"2026-11-01T10:00:00+01:00",
    b"0001-01-01T00:00:00+00:00", b"9999-12-31T23:59:59.999999+00:00", b"x" * 129,
    b"x" * 256, b"y" * 1_000_000, COURSE_PASSING.encode(), CCX_COURSE_PASSING.encode(),
    b"org.openedx.learning.badge.awarded.v1", V1_BYTES[:-1], V3_BYTES, V1_BYTES + b"\x00",
]


def every_field() -> list[dict[bytes, bytes]]:
    """A good entry with each field removed or set to each edge value, and `event_data`
    written by hand with every hostile integer and text."""
    out = []
    for name in FIELD_NAMES:
        for value in EDGE_FIELDS:
            fields = _fields_of(good_event("fz-learner", f"fz-{len(out)}"))
            if value is None:
                del fields[name]
            else:
                fields[name] = value
            out.append(fields)
    for user_id in [*HOSTILE_INTS, 2**70, -(2**100)]:
        for name in [b"fz", b"", b"\x00", b"\xff", b"\xed\xa0\x80", b"n" * 256, b"\x1b\n"]:
            fields = _fields_of(good_event("fz-learner", f"fz-{len(out)}"))
            fields[b"event_data"] = _crafted_avro(user_id, name)
            out.append(fields)
    return out


@st.composite
def bus_entries(draw: st.DrawFn) -> dict[bytes, bytes]:
    """A stream entry whose fields are missing, added, replaced or badly encoded."""
    base = _fields_of(good_event("fz-learner", f"fz-{draw(st.integers(0, 5))}"))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "set", "set", "avro", "avro", "add"]))
        name = draw(st.sampled_from(FIELD_NAMES))
        if op == "drop":
            base.pop(name, None)
        elif op == "set":
            base[name] = draw(field_values)
        elif op == "avro":
            base[b"event_data"] = draw(avro_payloads())
        else:
            base[draw(st.binary(min_size=1, max_size=10))] = draw(field_values)
    return base


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    client.close()


def test_bus_consumer_survives_fuzzed_entries(backend, services, synced, rds):
    _configure(services, synced)
    streams: list[str] = []

    @settings(FUZZ, max_examples=40)
    @given(fuzzed=st.lists(bus_entries(), min_size=5, max_size=25), goods=st.integers(1, 4),
           layout=st.randoms(use_true_random=False))
    @example(fuzzed=every_field(), goods=3, layout=random.Random(1))
    def check(fuzzed: list[dict[bytes, bytes]], goods: int, layout: random.Random) -> None:
        n = next(_ids)
        stream = f"badgetui-fuzz-{uuid.uuid4().hex[:12]}"
        streams.append(stream)
        good = [course_event(f"bus-{n}-{i}", DEMO, event_id=f"bus-{n}-{i}")
                for i in range(goods)]
        entries = [("good", _fields_of(e)) for e in good]
        for fields in fuzzed:
            entries.insert(layout.randint(0, len(entries)), ("fuzz", fields))
        pipe = rds.pipeline(transaction=False)
        for _, fields in entries:
            pipe.xadd(stream, fields or {b"empty": b""})
        pipe.execute()
        consumer = BusConsumer(services.intake, bus_config(stream, block=0.05,
                                                           retry_delay=0.01),
                               services.clock, client=rds, drain=True)
        stats = consumer.run()
        CASES["bus fuzzed entries"] += len(fuzzed)
        CASES["bus good events"] += goods
        assert pending(rds, stream) == 0
        assert stats.acked + stats.dead_lettered == len(entries)
        processed = {r.event_id for r in IntakeRecord.select().where(
            (IntakeRecord.source == f"redis:{stream}") & (IntakeRecord.outcome == "processed"))}
        assert {e["id"] for e in good} <= processed
        for _, letter in rds.xrange(f"{stream}-badgetui-dlq"):
            reason = letter[b"dlq_reason"].decode()
            assert len(reason) <= REPORT_LIMIT and reason.isprintable(), reason[:500]
        for row in IntakeRecord.select().where(IntakeRecord.source == f"redis:{stream}"):
            assert len(row.reason) <= 300 and row.reason.isprintable(), row.reason[:500]
        held = {b.learner.username for b in Badge.select() if b.status == "awarded"}
        assert {f"bus-{n}-{i}" for i in range(goods)} <= held

    try:
        check()
    finally:
        for stream in streams:
            rds.delete(stream, f"{stream}-badgetui-dlq")


# -- c. the Credly webhook receiver ---------------------------------------------------------------
class Forward(httpx.AsyncBaseTransport):
    """The emulator's webhook transport: hands each POST to the receiver app."""

    def __init__(self) -> None:
        self.target: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.target is not None
        return await self.target.handle_async_request(request)


@pytest.fixture
def forward() -> Forward:
    return Forward()


@pytest.fixture
def emulator(clock, forward):
    from badgetui.sandbox import Emulator

    seed = sandbox_seed()
    seed["credly"]["organizations"][0]["webhook_url"] = "http://receiver" + WEBHOOK_PATH
    return Emulator(seed, clock=clock, rng_seed=1, webhook_transport=forward,
                    options={"webhook_badge_events": True, "webhook_retry_delays": []})


NOTICE = {"id": "00000000-0000-4000-8000-00000000beef", "organization_id": CREDLY_ORG,
          "event_type": "badge.state.changed", "occurred_at": "2026-11-01T12:00:00Z"}


@st.composite
def webhook_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw", "huge", "deep"]))
    if kind == "raw":
        return draw(st.one_of(st.binary(max_size=200),
                              raw_line(NOTICE).map(lambda b: b.replace(b"\\n", b"\n"))))
    if kind == "huge":
        size = draw(st.sampled_from([60_000, 65_536, 65_537, 200_000]))
        return json.dumps({**NOTICE, "id": "i" * size}).encode()
    if kind == "deep":
        depth = draw(st.sampled_from(DEPTHS))
        return serialize({**NOTICE, "extra": DEEP + str(depth)}, ascii_only=True)
    return serialize(draw(mutated(NOTICE)), ascii_only=draw(st.booleans()))


def every_notice() -> list[bytes]:
    """The notice with each key removed or set to each edge value."""
    out = []
    for key in NOTICE:
        for value in [*EDGE_VALUES, "delete"]:
            doc = dict(NOTICE)
            if value == "delete":
                del doc[key]
            else:
                doc[key] = value
            out.append(serialize(doc, ascii_only=True))
    return out


def test_webhook_receiver_survives_fuzzed_bodies(psvc, clock, forward, emulator):
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    async def prepare() -> None:
        psvc.delivery.sleep = sleep
        account = await psvc.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key")
        await psvc.sync.sync(account.id)
        tpl = credly_templates(1)[0]["id"]
        psvc.config.import_text(config_text(template_config(
            tpl, [requirement("demo", rule("course.course_key", DEMO))])))
        psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
        assert (await psvc.delivery.run()).counts["issued"] == 1
        assert await emulator.wait_webhooks(5)

    forward.target = httpx.ASGITransport(app=webhook_app(psvc.webhooks))
    asyncio.run(prepare())
    assert Badge.get().provider_state == "pending"

    async def send(bodies: list[bytes]) -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=forward, base_url="http://receiver") as client:
            return [await client.post(WEBHOOK_PATH, content=body,
                                      headers={"Content-Type": "application/json"})
                    for body in bodies]

    @settings(FUZZ, max_examples=40)
    @given(bodies=st.lists(webhook_bodies(), min_size=5, max_size=20))
    @example(bodies=[b"[" * 60_000, b'{"a":' * 13_000, b"\xef\xbb\xbf" + json.dumps(NOTICE)
                     .encode(), json.dumps({**NOTICE, "organization_id": "\ud800"}).encode(),
                     json.dumps({**NOTICE, "id": "\udfff"}).encode(),
                     json.dumps({**NOTICE, "id": "../../badges"}).encode(),
                     json.dumps({**NOTICE, "id": "\x00"}).encode(),
                     json.dumps({**NOTICE, "organization_id": CREDLY_ORG + "\x00"}).encode(),
                     b"x" * 1_000_000])
    @example(bodies=every_notice())
    def check(bodies: list[bytes]) -> None:
        answers = asyncio.run(send(bodies))  # an exception in the app raises here
        CASES["webhook fuzzed bodies"] += len(bodies)
        for body, answer in zip(bodies, answers, strict=True):
            assert answer.status_code in (200, 400, 404, 413), (answer.status_code,
                                                                answer.text, body[:200])
            assert len(answer.json()["detail"]) <= REPORT_LIMIT

    check()
    ext = Badge.get().external_id

    async def good_one() -> None:
        emulator.set_credly_badge_state(ext, "accepted")
        assert await emulator.wait_webhooks(5)

    asyncio.run(good_one())
    CASES["webhook good events"] += 1
    delivery = emulator.webhook_deliveries()[-1]
    assert delivery["delivered"] and delivery["attempts"][-1]["status"] == 200
    assert Badge.get().provider_state == "accepted"


def test_webhook_receiver_survives_hostile_headers(services):
    """Content-Length values no HTTP client sends (a proxy might pass them): never a 500."""
    app = webhook_app(services.webhooks)

    async def call(headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        sent: list[dict[str, Any]] = []
        chunks = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": WEBHOOK_PATH, "raw_path":
                 WEBHOOK_PATH.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        await app(scope, receive, send)
        return sent[0]["status"]

    for value in ["²".encode("latin-1"), b"99999999999999999999999", b"-1", b"abc", b"",
                  b"\xff", b"1e9", b" 12 "]:
        status = asyncio.run(call([(b"content-length", value)], json.dumps(NOTICE).encode()))
        CASES["webhook fuzzed bodies"] += 1
        assert status in (400, 404, 413), (value, status)
