"""Several processes sharing one SQLite file end in the same state as one process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from badgetui.store.models import Badge, DeliveryJob, Fulfillment, IntakeRecord, Progress
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


def test_two_processes_overlapping_streams_match_one(make_services, synced, tmp_path, db_path):
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
    env.update(BADGETUI_DB=str(db_path), BADGETUI_BATCH_SIZE="20",
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

    from badgetui.services import Services
    from badgetui.settings import Settings

    ref = Services.open(Settings(db=str(tmp_path / "reference.db")))
    _setup(ref, lambda *ids: _sync_into(ref, *ids))
    ref.intake.ingest_lines(lines, "one")
    reference = _state()
    ref.close()
    assert concurrent == reference
    assert any(status == "revoked" for _, status in reference[0])


def _sync_into(services, *ids):
    from badgetui.services.templates import SyncedTemplate
    from badgetui.store.models import ProviderAccount

    services.templates.add_account("credly", "org", "key-0000")
    services.templates.upsert_synced(ProviderAccount.get(), [SyncedTemplate(i, i) for i in ids])
    return list(ids)
