"""Several processes sharing one database (a SQLite file, a PostgreSQL database) end in the same
state as one process, and deliver every badge to the provider exactly once."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
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
from tests.conftest import (
    CREDLY_ORG,
    POSTGRES_URL,
    credly_templates,
    postgres_schema,
    sandbox_seed,
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


def _state() -> tuple:
    badges = sorted(
        (b.learner.username, b.status) for b in Badge.select()
    )
    progress = sorted((p.learner.username, p.fulfilled_groups) for p in Progress.select())
    return (
        badges,
        progress,
        Fulfillment.select().count(),
        sorted((j.kind, j.state) for j in DeliveryJob.select()),
        IntakeRecord.select().where(IntakeRecord.outcome == "processed").count(),
    )


def _setup(services, synced) -> None:
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                    group="A"),
        requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                    group="B"),
    ], [penalty(["demo"], rule("is_passing", "false"), rule("course.course_key", DEMO))])))


def test_two_processes_overlapping_streams_match_one(make_services, synced, tmp_path, db_url):
    services = make_services(batch_size=50)
    _setup(services, synced)
    rnd = random.Random(3)
    events = []
    for n in range(600):
        learner = f"l{rnd.randrange(40)}"
        course = rnd.choice([DEMO, OTHER])
        events.append(course_event(learner, course, passing=rnd.random() < 0.85,
                                   event_id=f"e{n}", seconds=n))
    lines = [json.dumps(e) for e in events]
    # Learners 0-14 go to the first process, 25-39 to the second, 15-24 to both: every
    # learner's events keep their order, so the result must equal a single ordered run.
    def owner(event: dict) -> int:
        return int(event["data"]["course_passing_status"]["user"]["pii"]["username"][1:])

    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    first.write_text("\n".join(json.dumps(e) for e in events if owner(e) < 25) + "\n")
    second.write_text("\n".join(json.dumps(e) for e in events if owner(e) >= 15) + "\n")
    shared = sum(1 for e in events if 15 <= owner(e) < 25)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    env.update(BADGETUI_DB=db_url, BADGETUI_BATCH_SIZE="20",
               BADGETUI_CONFIG=str(tmp_path / "none.toml"))
    procs = [
        subprocess.Popen([sys.executable, "-m", "badgetui", "events", "ingest", str(path),
                          "--json", "--no-deliver"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for path in (first, second)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    counts = [json.loads(out) for out, _ in outputs]
    assert sum(c["processed"] for c in counts) == 600
    assert sum(c["duplicate"] for c in counts) == shared
    concurrent = _state()
    services.close()

    ref = Services.open(Settings(db=str(tmp_path / "reference.db")))
    _setup(ref, lambda *ids: _sync_into(ref, *ids))
    ref.intake.ingest_lines(lines, "one")
    reference = _state()
    ref.close()
    assert concurrent == reference
    assert any(status == "revoked" for _, status in reference[0])


def _sync_into(services, *ids):
    services.templates.add_account("credly", "org", "key-0000")
    services.templates.upsert_synced(ProviderAccount.get(), [SyncedTemplate(i, i) for i in ids])
    return list(ids)


# -- several processes on one PostgreSQL database ---------------------------------------------

THIRD = "course-v1:edX+DemoX+THIRD_Course"
CREDLY_TPL = credly_templates(1)[0]["id"]
SECOND_TPL = credly_templates(2)[1]["id"]
ACCREDIBLE = "Example Accredible"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pg_config() -> str:
    """Three templates on two providers: groups, penalties that revoke, a rule-less requirement."""
    demo = rule("course.course_key", DEMO)
    return json.dumps({"version": 1, "templates": [
        template_config(CREDLY_TPL, [
            requirement("demo", demo, rule("is_passing", "true"), group="A"),
            requirement("other", rule("course.course_key", OTHER), rule("is_passing", "true"),
                        group="B"),
            requirement("third", rule("course.course_key", THIRD), rule("is_passing", "true"),
                        group="B"),
        ], [penalty(["demo"], demo, rule("is_passing", "false")),
            penalty(["other", "third"], rule("course.course_key", OTHER),
                    rule("is_passing", "false"))]),
        template_config(SECOND_TPL, [requirement("any", group="A")],
                        [penalty(["any"], rule("course.course_key", THIRD),
                                 rule("is_passing", "false"))]),
        {**template_config("9001", [requirement("demo", demo, rule("is_passing", "true"))],
                           [penalty(["demo"], demo, rule("is_passing", "false"))],
                           provider="accredible"), "account": ACCREDIBLE},
    ]})


def _pg_workload(learners: int, per_learner: int, seed: int) -> dict[str, list[dict]]:
    """Each learner's events, in the order they happened (the order that decides the result)."""
    rnd = random.Random(seed)
    courses = [DEMO, DEMO, OTHER, THIRD]
    streams: dict[str, list[dict]] = {}
    n = 0
    for number in range(learners):
        name = f"learner{number}"
        streams[name] = []
        for _ in range(per_learner):
            streams[name].append(course_event(
                name, rnd.choice(courses), passing=rnd.random() < 0.75, event_id=f"pg-{n}",
                seconds=n, uid=1000 + number))
            n += 1
    return streams


def _interleave(per_learner: dict[str, list[dict]], names: list[str], rnd: random.Random) -> list:
    """A random merge of these learners' sequences: each learner's events keep their order."""
    turns = [name for name in names for _ in per_learner[name]]
    rnd.shuffle(turns)
    cursors = dict.fromkeys(names, 0)
    merged = []
    for name in turns:
        merged.append(per_learner[name][cursors[name]])
        cursors[name] += 1
    return merged


def _full_state() -> dict[str, object]:
    """What processing decided, keyed by names and event ids (never row ids or badge uuids)."""
    names = dict(Learner.select(Learner.id, Learner.username).tuples())
    tpls = {t.id: (t.provider, t.external_id) for t in Template.select()}
    reqs = {r.id: r.key for r in Requirement.select()}
    badges = {b.id: (names[b.learner_id], tpls[b.template_id], b.award_event_id)
              for b in Badge.select()}
    progress = {p.id: (names[p.learner_id], tpls[p.template_id]) for p in Progress.select()}
    return {
        "learners": sorted(Learner.select(Learner.username, Learner.email, Learner.name,
                                          Learner.lms_id, Learner.is_active).tuples()),
        "badges": sorted((*badges[b.id], b.status, b.provider_state, b.revoke_event_id or "",
                          b.revoke_reason) for b in Badge.select()),
        "progress": sorted((*progress[p.id], p.fulfilled_groups, p.complete,
                            badges[p.badge_id] if p.badge_id else None)
                           for p in Progress.select()),
        "fulfillments": sorted((*progress[f.progress_id], reqs[f.requirement_id], f.event_id,
                                f.event_time) for f in Fulfillment.select()),
        "jobs": sorted((*badges[j.badge_id], j.kind, j.state) for j in DeliveryJob.select()),
        "outbox": sorted((e.event_type, *badges[e.badge_id], e.time)
                         for e in OutgoingEvent.select()),
        "effects": sorted((r.event_id, _UUID.sub("<uuid>", r.effects)) for r in
                          IntakeRecord.select().where(IntakeRecord.outcome == "processed")),
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "badgetui", *args], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.mark.skipif(not POSTGRES_URL, reason="needs a PostgreSQL server (BADGETUI_TEST_POSTGRES)")
def test_processes_sharing_postgres_match_one_ordered_run(tmp_path):
    """Three `events ingest` processes over overlapping, differently interleaved streams on one
    PostgreSQL database end exactly where one ordered run on SQLite does; then two `deliver`
    processes, with the provider failing some calls, issue every badge exactly once."""
    emulator = Emulator(sandbox_seed(templates=2), rng_seed=17)
    base, stop = start_in_thread(emulator)
    try:
        with postgres_schema() as url:
            _run_processes_on_postgres(emulator, base, url, tmp_path)
    finally:
        emulator.set_faults({})
        stop()


def _run_processes_on_postgres(emulator: Emulator, base: str, url: str, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    env.update(BADGETUI_DB=url, BADGETUI_CONFIG=str(tmp_path / "none.toml"),
               BADGETUI_CREDLY_API_URL=f"{base}/credly/v1/",
               BADGETUI_ACCREDIBLE_API_URL=f"{base}/accredible/v1/",
               BADGETUI_PROVIDER_TIMEOUT="5", BADGETUI_DELIVERY_BASE_DELAY="0.05",
               BADGETUI_DELIVERY_MAX_DELAY="0.5", BADGETUI_DELIVERY_CONCURRENCY="8")
    _cli(env, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key",
         "sandbox-credly-key")
    _cli(env, "provider", "add", "accredible", "--name", ACCREDIBLE, "--api-key",
         "sandbox-accredible-key")
    _cli(env, "sync")
    config = tmp_path / "config.json"
    config.write_text(_pg_config())
    _cli(env, "config", "import", str(config))

    per_learner = _pg_workload(learners=60, per_learner=50, seed=23)
    names = list(per_learner)
    total = sum(len(events) for events in per_learner.values())
    rnd = random.Random(29)
    paths = []
    for index in range(3):
        # Every learner is in two of the three streams; each stream interleaves differently.
        mine = [name for number, name in enumerate(names)
                if index in (number % 3, (number + 1) % 3)]
        path = tmp_path / f"stream{index}.jsonl"
        path.write_text("\n".join(json.dumps(e) for e in _interleave(per_learner, mine, rnd))
                        + "\n")
        paths.append(path)
    procs = [
        subprocess.Popen([sys.executable, "-m", "badgetui", "events", "ingest", str(path),
                          "--json", "--no-deliver"],
                         env={**env, "BADGETUI_BATCH_SIZE": str(size)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path, size in zip(paths, (25, 40, 60), strict=True)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    counts = [json.loads(out) for out, _ in outputs]
    assert sum(c["processed"] for c in counts) == total
    assert sum(c["duplicate"] for c in counts) == total  # every event was in two streams
    assert sum(c["rejected"] for c in counts) == 0

    services = Services.open(Settings(db=url))
    try:
        concurrent = _full_state()
    finally:
        services.close()

    ordered = sorted((e for events in per_learner.values() for e in events),
                     key=lambda e: int(e["id"].split("-")[1]))
    reference = Services.open(Settings(db=str(tmp_path / "reference.db")))
    try:
        for provider, identifier, ids in (("credly", CREDLY_ORG, [CREDLY_TPL, SECOND_TPL]),
                                          ("accredible", ACCREDIBLE, ["9001"])):
            reference.templates.add_account(provider, identifier, "key-0000")
            account = ProviderAccount.get(ProviderAccount.identifier == identifier)
            reference.templates.upsert_synced(account, [SyncedTemplate(i, i) for i in ids])
        reference.config.import_text(_pg_config())
        report = reference.intake.ingest_lines([json.dumps(e) for e in ordered], "one")
        assert report.counts["processed"] == total
        expected = _full_state()
    finally:
        reference.close()
    for key in expected:
        assert concurrent[key] == expected[key], key
    statuses = {b[3] for b in expected["badges"]}
    assert statuses == {"awarded", "revoked"}

    # Delivery from two processes at once, with 10 % of the provider calls failing.
    emulator.set_faults({"*": {"rate_429": 0.05, "retry_after": 1, "rate_5xx": 0.05},
                         "credly.issue": {"rate_5xx": 0.10, "phase": "after"},
                         "accredible.credentials.create": {"rate_5xx": 0.10, "phase": "after"}})
    workers = [subprocess.Popen([sys.executable, "-m", "badgetui", "deliver", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), results
    emulator.set_faults({})
    _cli(env, "deliver")  # anything that was still backing off
    _check_delivered_once(emulator, url)


def _check_delivered_once(emulator: Emulator, url: str) -> None:
    state = emulator.state()
    services = Services.open(Settings(db=url))
    try:
        jobs = Counter(j.state for j in DeliveryJob.select())
        assert set(jobs) <= {"done", "cancelled"}, jobs
        held = {b.external_id: b for b in Badge.select().join(Template).where(
            (Template.provider == "credly") & (Badge.status == "awarded"))}
        remote = state["credly"]["badges"]
        live = [b for b in remote if b["state"] != "revoked"]
        assert len(held) == Badge.select().join(Template).where(
            (Template.provider == "credly") & (Badge.status == "awarded")).count()
        assert sorted(b["id"] for b in live) == sorted(held)
        per_key = Counter((b["issuer_earner_id"], b["badge_template_id"]) for b in live)
        assert set(per_key.values()) == {1}
        by_id = {b["id"]: b for b in remote}
        for badge in Badge.select().join(Template).where(
                (Template.provider == "credly") & (Badge.status == "revoked")):
            if badge.external_id:
                assert by_id[badge.external_id]["state"] == "revoked"
        creds = state["accredible"]["credentials"]
        unexpired = sorted(str(c["id"]) for c in creds if not c["expired_on"])
        held_acc = sorted(b.external_id for b in Badge.select().join(Template).where(
            (Template.provider == "accredible") & (Badge.status == "awarded")))
        assert unexpired == held_acc
        assert len(held) > 20 and len(held_acc) > 10
    finally:
        services.close()
    assert state["requests"]["failed_injected"] > 10
