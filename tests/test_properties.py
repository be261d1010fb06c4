"""Properties of intake over random event streams (hypothesis), each example on a fresh database
(a SQLite file; also a PostgreSQL schema when BADGETUI_TEST_POSTGRES is set): idempotence,
batching does not matter, bad lines never stop the rest, and the result is what semantics.md
says it must be (checked against a small reference model)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING, content_id
from badgetui.services import Services
from badgetui.services.intake import IngestReport
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import (
    Badge,
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
from tests.conftest import CREDLY_ORG, FakeClock, fresh_database
from tests.helpers import config_text, penalty, requirement, rule, template_config

LEARNERS = ("ann", "bob", "cy")
COURSES = tuple(f"course-v1:Org+C{n}+2026" for n in range(1, 5))
C1, C2, C3, C4 = COURSES
SHARED_IDS = ("dup-1", "dup-2", "dup-3")

# t1: (c1 or c2) and c3; failing C1 resets c1, failing C3 resets c3.
# t2: c4 and (a CCX of C2); failing C4 resets both.
CONFIG = config_text(
    template_config("t1", [
        requirement("c1", rule("is_passing", "true"), rule("course.course_key", C1), group="A"),
        requirement("c2", rule("is_passing", "yes"), rule("course.course_key", C2), group="A"),
        requirement("c3", rule("is_passing", "true"), rule("course.course_key", C3), group="B"),
    ], [
        penalty(["c1"], rule("is_passing", "false"), rule("course.course_key", C1)),
        penalty(["c3"], rule("is_passing", "no"), rule("course.course_key", C3)),
    ]),
    template_config("t2", [
        requirement("c4", rule("is_passing", "true"), rule("course.course_key", C4), group="A"),
        requirement("ccx", rule("is_passing", "true"), rule("course.master_course_key", C2),
                    group="B", event_type=CCX_COURSE_PASSING),
    ], [
        penalty(["c4", "ccx"], rule("is_passing", "false"), rule("course.course_key", C4)),
    ]),
    template_config("t3", [
        requirement("never", rule("course.course_key", C1)),
    ], active=False),
)

# -- strategies ------------------------------------------------------------------------------


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """One well-formed course or CCX passing event over the small universe."""
    username = draw(st.sampled_from(LEARNERS))
    uid = LEARNERS.index(username) + 1
    user = {"id": uid, "is_active": True,
            "pii": {"username": username,
                    "email": f"{username}{draw(st.sampled_from(['', '+alt']))}@example.org",
                    "name": username.title()}}
    passing = draw(st.integers(0, 9)) < 6
    course = draw(st.sampled_from(COURSES))
    if draw(st.integers(0, 4)) == 0:
        event: dict[str, Any] = {
            "event_type": CCX_COURSE_PASSING,
            "data": {"course_passing_status": {
                "is_passing": passing, "user": user,
                "course": {"ccx_course_key": course.replace("course-v1:", "ccx-v1:") + "+ccx@1",
                           "master_course_key": course}}},
        }
    else:
        event = {
            "event_type": COURSE_PASSING,
            "data": {"course_passing_status": {
                "is_passing": passing, "course": {"course_key": course}, "user": user}},
        }
    second = draw(st.integers(0, 3600))
    offset = draw(st.sampled_from(["+00:00", "Z", "+02:00", "-05:30"]))
    event["time"] = f"2026-11-01T{10 + second // 3600:02d}:{second // 60 % 60:02d}:" \
                    f"{second % 60:02d}{offset}"
    kind = draw(st.integers(0, 19))
    if kind <= 1:
        event["id"] = draw(st.sampled_from(SHARED_IDS))
    elif kind <= 17:
        event["id"] = f"evt-{draw(st.integers(0, 10**9))}"
    # else: no id, the content hash is the id
    return event


# short streams for the edge cases, long ones for award, revoke and award again
_long = st.lists(events(), min_size=20, max_size=40)
streams = st.one_of(st.lists(events(), max_size=8), _long, _long)


def _explicit(username: str, course: str, passing: bool, eid: str, *, ccx: bool = False
              ) -> dict[str, Any]:
    user = {"id": LEARNERS.index(username) + 1, "is_active": True,
            "pii": {"username": username, "email": f"{username}@example.org",
                    "name": username.title()}}
    if ccx:
        record = {"is_passing": passing, "user": user,
                  "course": {"ccx_course_key": "ccx-v1:Org+C+2026+ccx@9",
                             "master_course_key": course}}
        return {"id": eid, "event_type": CCX_COURSE_PASSING, "time": "2026-11-01T10:00:00Z",
                "data": {"course_passing_status": record}}
    record = {"is_passing": passing, "course": {"course_key": course}, "user": user}
    return {"id": eid, "event_type": COURSE_PASSING, "time": "2026-11-01T10:00:00Z",
            "data": {"course_passing_status": record}}


# award, revoke, award again (twice), a duplicate on the way, and a second template
LIFECYCLE = [
    _explicit("ann", C1, True, "e1"),
    _explicit("ann", C3, True, "e2"),  # t1 awarded
    _explicit("ann", C1, False, "e3"),  # revoked
    _explicit("ann", C2, True, "e4"),  # awarded again
    _explicit("ann", C3, True, "e2"),  # duplicate
    _explicit("ann", C3, False, "e5"),  # revoked again
    _explicit("ann", C3, True, "e6"),  # awarded a third time
    _explicit("bob", C4, True, "e7"),
    _explicit("bob", C2, True, "e8", ccx=True),  # t2 awarded
    _explicit("bob", C4, False, "e9"),  # revoked, both requirements reset
    _explicit("bob", C2, True, "e10", ccx=True),
    _explicit("bob", C1, False, "e11"),  # penalty without progress: nothing
]

_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _set(obj: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    copy = json.loads(json.dumps(obj))
    node = copy
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return copy


WRONG_TYPES: list[tuple[str, object]] = [
    ("data.course_passing_status.is_passing", "yes"),
    ("data.course_passing_status.is_passing", 1),
    ("data.course_passing_status.is_passing", None),
    ("data.course_passing_status.user.id", "7"),
    ("data.course_passing_status.user.id", 7.5),
    ("data.course_passing_status.user.is_active", "true"),
    ("data.course_passing_status.user.pii.username", 42),
    ("data.course_passing_status.user.pii.email", None),
    ("data.course_passing_status.user", ["ann"]),
    ("data.course_passing_status.course", "course-v1:Org+C1+2026"),
    ("data.course_passing_status", []),
    ("data", "text"),
    ("id", 5),
    ("id", ""),
    ("event_type", 12),
    ("time", 1_700_000_000),
    ("time", "2026-11-01 09:00"),
    ("time", "yesterday"),
]


@st.composite
def malformed(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """A line that must be rejected: random text, truncated JSON, wrong types, no event_type."""
    kind = draw(st.sampled_from(["text", "truncated", "types", "no_type"]))
    if kind == "text":
        return draw(
            st.text(st.characters(blacklist_categories=("Cs",),
                                  blacklist_characters=_LINE_BREAKS), min_size=1, max_size=40)
            .filter(lambda t: t.strip() and not _is_json_object(t))
        )
    text = json.dumps(base)
    if kind == "truncated":
        return text[: draw(st.integers(1, len(text) - 1))]
    if kind == "no_type":
        return json.dumps({k: v for k, v in base.items() if k != "event_type"})
    path, value = draw(st.sampled_from(WRONG_TYPES))  # paths both event types have
    return json.dumps(_set(base, path, value))


# -- running ---------------------------------------------------------------------------------


@contextmanager
def fresh(backend: str, batch_size: int = 500) -> Iterator[Services]:
    """A new database with the universe's templates synced and configured."""
    with tempfile.TemporaryDirectory() as tmp, fresh_database(
        backend, Path(tmp), recycle=True
    ) as url:
        services = Services.open(Settings(db=url, batch_size=batch_size), clock=FakeClock())
        try:
            services.templates.add_account("credly", CREDLY_ORG, "test-key-1234", name="Example")
            account = ProviderAccount.get()
            services.templates.upsert_synced(
                account, [SyncedTemplate(ext, f"Template {ext}") for ext in ("t1", "t2", "t3")]
            )
            services.config.import_text(CONFIG)
            yield services
        finally:
            services.close()


def ingest(services: Services, lines: list[str]) -> IngestReport:
    return services.intake.ingest_lines(lines, "property")


def lines_of(stream: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(e) for e in stream]


def snapshot() -> dict[str, Any]:
    """The observable result of processing, independent of row ids and batch layout."""
    names = {lid: name for lid, name in Learner.select(Learner.id, Learner.username).tuples()}
    templates = {tid: ext for tid, ext in Template.select(Template.id, Template.external_id)
                 .tuples()}
    keys = {rid: key for rid, key in Requirement.select(Requirement.id, Requirement.key).tuples()}
    progress = {}
    for row in Progress.select():
        progress[row.id] = (names[row.learner_id], templates[row.template_id])
    fulfilled: dict[int, set[str]] = {pid: set() for pid in progress}
    fulfilments = []
    for pid, rid, event_id in Fulfillment.select(
        Fulfillment.progress, Fulfillment.requirement, Fulfillment.event_id
    ).tuples():
        fulfilled[pid].add(keys[rid])
        fulfilments.append((*progress[pid], keys[rid], event_id))
    return {
        "badges": sorted(
            (names[b.learner_id], templates[b.template_id], b.status, b.provider_state,
             b.award_event_id, b.revoke_event_id or "")
            for b in Badge.select()
        ),
        "progress": sorted(
            (*progress[p.id], tuple(sorted(fulfilled[p.id])), p.fulfilled_groups,
             bool(p.complete), p.badge_id is not None)
            for p in Progress.select()
        ),
        "fulfilments": sorted(fulfilments),
        "jobs": Counter((j.kind, j.state) for j in DeliveryJob.select()),
        "outgoing": Counter(e.event_type for e in OutgoingEvent.select()),
        "learners": sorted(
            (lr.username, lr.email, lr.name, lr.lms_id) for lr in Learner.select()
        ),
        "claimed": sorted(
            r.event_id for r in IntakeRecord.select().where(IntakeRecord.event_id.is_null(False))
        ),
    }


def event_id(event: dict[str, Any]) -> str:
    return event["id"] if "id" in event else content_id(event)


# -- a reference model of semantics.md for this configuration --------------------------------

GROUPS = {"t1": {"c1": "A", "c2": "A", "c3": "B"}, "t2": {"c4": "A", "ccx": "B"}}


@dataclass
class _Held:
    fulfilled: dict[str, str] = field(default_factory=dict)  # requirement -> event id
    badge: int | None = None  # index into badges while held


def reference(stream: list[dict[str, Any]]) -> dict[str, Any]:
    """What semantics.md says the stream must produce, computed independently."""
    seen: set[str] = set()
    states: dict[tuple[str, str], _Held] = {}
    badges: list[list[str]] = []
    learners: dict[str, tuple[Any, ...]] = {}
    outgoing: Counter[str] = Counter()
    for event in stream:
        eid = event_id(event)
        if eid in seen:
            continue
        seen.add(eid)
        record = event["data"]["course_passing_status"]
        user = record["user"]
        name = user["pii"]["username"]
        learners[name] = (name, user["pii"]["email"], user["pii"]["name"], user["id"])
        passing = record["is_passing"]
        if event["event_type"] == COURSE_PASSING:
            course = record["course"]["course_key"]
            matched = {("t1", "c1"): course == C1, ("t1", "c2"): course == C2,
                       ("t1", "c3"): course == C3, ("t2", "c4"): course == C4}
            resets = {("t1", ("c1",)): course == C1, ("t1", ("c3",)): course == C3,
                      ("t2", ("c4", "ccx")): course == C4}
        else:
            matched = {("t2", "ccx"): record["course"]["master_course_key"] == C2}
            resets = {}
        if passing:
            for (tpl, req), hit in matched.items():
                if not hit:
                    continue
                state = states.setdefault((name, tpl), _Held())
                if state.badge is not None:
                    continue  # a held badge's requirements are not re-evaluated
                state.fulfilled.setdefault(req, eid)
                if _complete(tpl, state):
                    badges.append([name, tpl, "awarded", "created", eid, ""])
                    state.badge = len(badges) - 1
                    outgoing["org.openedx.learning.badge.awarded.v1"] += 1
        else:
            for (tpl, reqs), hit in resets.items():
                if not hit:
                    continue
                state = states.setdefault((name, tpl), _Held())
                for req in reqs:
                    state.fulfilled.pop(req, None)
                if state.badge is not None and not _complete(tpl, state):
                    # not delivered yet: the issue job is cancelled instead
                    badges[state.badge][2:4] = ["revoked", "cancelled"]
                    badges[state.badge][5] = eid
                    state.badge = None
                    outgoing["org.openedx.learning.badge.revoked.v1"] += 1
    jobs = Counter(("issue", "queued" if b[2] == "awarded" else "cancelled") for b in badges)
    return {
        "badges": sorted(tuple(b) for b in badges),
        "fulfilments": sorted(
            (name, tpl, req, eid)
            for (name, tpl), state in states.items()
            for req, eid in state.fulfilled.items()
        ),
        "progress": sorted(
            (name, tpl, tuple(sorted(state.fulfilled)))
            for (name, tpl), state in states.items() if state.fulfilled
        ),
        "jobs": +jobs,
        "outgoing": +outgoing,
        "learners": sorted(learners.values()),
        "claimed": sorted(seen),
    }


def _complete(tpl: str, state: _Held) -> bool:
    groups = set(GROUPS[tpl].values())
    done = {GROUPS[tpl][req] for req in state.fulfilled}
    return done == groups


def _consistent(state: dict[str, Any]) -> None:
    """Progress rows agree with their own fulfilments and with the badges held."""
    held = Counter((b[0], b[1]) for b in state["badges"] if b[2] == "awarded")
    assert all(n == 1 for n in held.values())
    for name, tpl, keys, groups_done, complete, holds in state["progress"]:
        if tpl not in GROUPS:
            continue
        groups = {GROUPS[tpl][k] for k in keys}
        assert groups_done == len(groups)
        assert complete == (groups == set(GROUPS[tpl].values()))
        assert holds == ((name, tpl) in held)


COMMON = settings(max_examples=30, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])

# -- properties ------------------------------------------------------------------------------


@COMMON
@given(stream=streams)
@example(stream=LIFECYCLE)
def test_ingesting_twice_changes_nothing(backend, stream):
    lines = lines_of(stream)
    ids = [event_id(e) for e in stream]
    with fresh(backend) as services:
        first = ingest(services, lines)
        once = snapshot()
        second = ingest(services, lines)
        twice = snapshot()
    assert twice == once
    assert first.counts["processed"] == len(set(ids))
    assert first.counts["duplicate"] == len(ids) - len(set(ids))
    assert second.counts["processed"] == 0
    assert second.counts["duplicate"] == len(ids)
    assert second.counts["duplicate"] == first.counts["processed"] + first.counts["duplicate"]
    assert (second.awarded, second.revoked) == (0, 0)
    assert first.problems == second.problems == []


@COMMON
@given(stream=streams, data=st.data())
def test_batching_does_not_change_the_result(backend, stream, data):
    lines = lines_of(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(lines)), max_size=5), label="cuts"))
    chunks = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    batch_size = data.draw(st.sampled_from([1, 2, 3, 7]), label="batch_size")

    with fresh(backend) as services:
        whole = ingest(services, lines)
        expected = snapshot()
    with fresh(backend) as services:
        parts = [ingest(services, chunk) for chunk in chunks]
        assert snapshot() == expected
    with fresh(backend, batch_size) as services:
        small = ingest(services, lines)
        assert snapshot() == expected
    with fresh(backend, batch_size) as services:
        small_parts = [ingest(services, chunk) for chunk in chunks]
        assert snapshot() == expected

    for reports in (parts, [small], small_parts):
        assert sum((r.counts for r in reports), Counter()) == +whole.counts
        assert sum(r.awarded for r in reports) == whole.awarded
        assert sum(r.revoked for r in reports) == whole.revoked


@COMMON
@given(stream=streams, data=st.data())
def test_malformed_lines_never_stop_the_rest(backend, stream, data):
    bad_count = data.draw(st.integers(1, 8), label="bad lines")
    bases = stream or [json.loads(json.dumps(
        {"id": "base", "event_type": COURSE_PASSING, "time": "2026-11-01T10:00:00+00:00",
         "data": {"course_passing_status": {
             "is_passing": True, "course": {"course_key": C1},
             "user": {"id": 1, "is_active": True,
                      "pii": {"username": "ann", "email": "ann@example.org"}}}}}))]
    bad = [data.draw(malformed(data.draw(st.sampled_from(bases), label="base")), label="bad")
           for _ in range(bad_count)]
    blanks = data.draw(st.integers(0, 3), label="blank lines")
    mixed: list[tuple[str, str]] = [("ok", line) for line in lines_of(stream)]
    for text in bad:
        mixed.insert(data.draw(st.integers(0, len(mixed)), label="at"), ("bad", text))
    for _ in range(blanks):
        mixed.insert(data.draw(st.integers(0, len(mixed)), label="at"),
                     ("blank", data.draw(st.sampled_from(["", "   ", "\t"]))))
    bad_lines = [n for n, (kind, _) in enumerate(mixed, start=1) if kind == "bad"]
    batch_size = data.draw(st.sampled_from([1, 3, 500]), label="batch_size")

    with fresh(backend) as services:
        ingest(services, lines_of(stream))
        expected = snapshot()
    with fresh(backend, batch_size) as services:
        report = ingest(services, [text for _, text in mixed])
        assert snapshot() == expected
        rejected_lines = sorted(
            r.line for r in IntakeRecord.select().where(IntakeRecord.outcome == "rejected")
        )
    assert [(p.line, p.outcome) for p in report.problems] == [(n, "rejected") for n in bad_lines]
    assert all(p.reason for p in report.problems)
    assert report.counts["rejected"] == len(bad_lines)
    assert report.problems_total == len(bad_lines)
    assert rejected_lines == bad_lines
    assert report.counts["processed"] + report.counts["duplicate"] == len(stream)


@COMMON
@given(stream=streams)
@example(stream=LIFECYCLE)
def test_result_is_what_the_semantics_say(backend, stream):
    expected = reference(stream)
    with fresh(backend) as services:
        report = ingest(services, lines_of(stream))
        state = snapshot()
    _consistent(state)
    assert state["badges"] == expected["badges"]
    assert state["fulfilments"] == expected["fulfilments"]
    assert [p[:3] for p in state["progress"] if p[2]] == expected["progress"]
    assert state["jobs"] == expected["jobs"]
    assert state["outgoing"] == expected["outgoing"]
    assert state["learners"] == expected["learners"]
    assert state["claimed"] == expected["claimed"]
    assert report.awarded == sum(1 for _ in expected["badges"])
    assert report.revoked == sum(1 for b in expected["badges"] if b[2] == "revoked")
    assert not any(b[1] == "t3" for b in state["badges"])  # inactive: ignored entirely


def test_lifecycle_in_any_batching_matches_the_reference(backend):
    expected = reference(LIFECYCLE)
    lines = lines_of(LIFECYCLE)
    for batch_size, chunks in [(500, [lines]), (1, [lines]), (2, [lines[:3], lines[3:]]),
                               (3, [lines[:1], lines[1:6], lines[6:]])]:
        with fresh(backend, batch_size) as services:
            for chunk in chunks:
                ingest(services, chunk)
            state = snapshot()
        _consistent(state)
        assert state["badges"] == expected["badges"], batch_size
        assert state["fulfilments"] == expected["fulfilments"], batch_size
        assert state["jobs"] == expected["jobs"], batch_size
        assert state["outgoing"] == expected["outgoing"], batch_size


def test_lifecycle_reference_is_the_documented_story():
    """The reference model itself tells the story semantics.md does (guards the oracle)."""
    expected = reference(LIFECYCLE)
    assert expected["badges"] == sorted([
        ("ann", "t1", "revoked", "cancelled", "e2", "e3"),
        ("ann", "t1", "revoked", "cancelled", "e4", "e5"),
        ("ann", "t1", "awarded", "created", "e6", ""),
        ("bob", "t2", "revoked", "cancelled", "e8", "e9"),
    ])
    assert expected["progress"] == [("ann", "t1", ("c2", "c3")), ("bob", "t2", ("ccx",))]
    assert expected["outgoing"] == Counter({"org.openedx.learning.badge.awarded.v1": 4,
                                            "org.openedx.learning.badge.revoked.v1": 3})
