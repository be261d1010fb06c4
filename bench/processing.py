"""Storm benchmark: ingest throughput into a SQLite file (issue 2 target: >= 5,000 events/s).

200 templates, each `(X or Y) and Z` plus a penalty on failing Z; 5,000 learners; 50,000
course-passing events, 85 % passing, most learners following one template's courses.

    python bench/processing.py [--events 50000] [--learners 5000] [--templates 200]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.domain.events import COURSE_PASSING
from badgetui.services import Services
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings


def course(t: int, part: str) -> str:
    return f"course-v1:Bench+T{t:03d}{part}+2026"


def rule(path: str, value: str, op: str = "eq") -> dict[str, str]:
    return {"path": path, "op": op, "value": value}


def build_config(ids: list[str]) -> dict:
    templates = []
    for t, ext in enumerate(ids):
        reqs = [
            {"id": part.lower(), "event_type": COURSE_PASSING, "group": group,
             "rules": [rule("is_passing", "true"), rule("course.course_key", course(t, part))]}
            for part, group in (("X", "A"), ("Y", "A"), ("Z", "B"))
        ]
        templates.append({
            "provider": "credly", "external_id": ext, "active": True, "requirements": reqs,
            "penalties": [{"event_type": COURSE_PASSING, "requirements": ["z"],
                           "rules": [rule("is_passing", "false"),
                                     rule("course.course_key", course(t, "Z"))]}],
        })
    return {"version": 1, "templates": templates}


def write_events(path: Path, events: int, learners: int, templates: int, seed: int) -> None:
    rnd = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    follows = [rnd.randrange(templates) for _ in range(learners)]
    with path.open("w") as out:
        for n in range(events):
            learner = rnd.randrange(learners)
            t = follows[learner] if rnd.random() < 0.9 else rnd.randrange(templates)
            part = rnd.choice("XYZ")
            event = {
                "id": str(uuid.UUID(int=rnd.getrandbits(128))),
                "event_type": COURSE_PASSING,
                "time": (start + timedelta(seconds=n)).isoformat(),
                "data": {"course_passing_status": {
                    "is_passing": rnd.random() < 0.85,
                    "course": {"course_key": course(t, part), "display_name": "",
                               "start": None, "end": None},
                    "user": {"id": learner, "is_active": True,
                             "pii": {"username": f"learner{learner}",
                                     "email": f"learner{learner}@example.org",
                                     "name": f"Learner {learner}"}}}},
            }
            out.write(json.dumps(event) + "\n")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--learners", type=int, default=5_000)
    parser.add_argument("--templates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="badgetui-bench-"))
    services = Services.open(Settings(db=str(work / "bench.db")))
    account = services.templates.add_account("credly", str(uuid.uuid4()), "bench-key-0000")
    ids = [str(uuid.UUID(int=i + 1)) for i in range(args.templates)]
    from badgetui.store.models import ProviderAccount

    with services.database.connection_context():
        services.templates.upsert_synced(
            ProviderAccount.get_by_id(account.id),
            [SyncedTemplate(ext, f"Template {i}") for i, ext in enumerate(ids)],
        )
        services.config.import_text(json.dumps(build_config(ids)))

    events_file = work / "events.jsonl"
    write_events(events_file, args.events, args.learners, args.templates, args.seed)
    rss_before = rss_mb()
    marks: list[tuple[int, float]] = []

    def progress(report: object) -> None:
        total = report.total  # type: ignore[attr-defined]
        if not marks or total - marks[-1][0] >= args.events // 5:
            marks.append((total, rss_mb()))

    started = time.perf_counter()
    with services.database.connection_context(), events_file.open() as lines:
        report = services.intake.ingest_lines(lines, str(events_file), on_progress=progress)
    elapsed = time.perf_counter() - started
    rate = report.total / elapsed
    print(f"events: {report.total}  counts: {report.as_dict()}")
    print("rss (MB) as the stream grows: " + ", ".join(f"{n}: {m:.0f}" for n, m in marks)
          + f" (before ingest {rss_before:.0f})")
    print(f"ingest: {elapsed:.2f} s, {rate:,.0f} events/s")


if __name__ == "__main__":
    main()
