"""Migration benchmark: `badgetui migrate credentials` of a large Credentials site.

Builds a SQLite Credentials database (the schema of tests/credentials_db.py) with N learners,
200 Credly templates of two groups, a progress row per learner for 2 templates (3 fulfillments
each on average) and a badge for every complete one, then migrates it into a fresh SQLite file
through the CLI in a subprocess and prints the time, the rows per second, the peak RSS, and
the time of the second (no-op) run.

    python bench/migrate.py [--learners 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.credentials_db import CONTENT_TYPES, DDL, _sqlite_ddl  # noqa: E402

PASSING = "org.openedx.learning.course.passing.status.updated.v1"
TEMPLATES = 200
ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"


def build(path: Path, learners: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    con = sqlite3.connect(path)
    for statement in DDL:
        con.execute(_sqlite_ddl(statement))
    con.executemany("INSERT INTO django_content_type (app_label, model) VALUES (?, ?)",
                    CONTENT_TYPES)
    ctype = con.execute("SELECT id FROM django_content_type WHERE model = "
                        "'credlybadgetemplate'").fetchone()[0]
    now = "2025-03-01 10:00:00.000000"
    con.execute("INSERT INTO django_site (domain, name) VALUES ('lms', 'lms')")
    con.execute("INSERT INTO badges_credlyorganization (created, modified, uuid, api_key, name)"
                " VALUES (?, ?, ?, 'bench-key-1234', 'Bench')", (now, now, uuid.UUID(ORG).hex))
    reqs: dict[int, list[tuple[int, str]]] = {}
    for t in range(1, TEMPLATES + 1):
        con.execute("INSERT INTO badges_badgetemplate (id, created, modified, is_active, uuid, "
                    "name, description, icon, origin, state, site_id) VALUES (?, ?, ?, 1, ?, ?, "
                    "'', '', 'credly', 'active', 1)",
                    (t, now, now, uuid.UUID(int=t).hex, f"Badge {t}"))
        con.execute("INSERT INTO badges_credlybadgetemplate VALUES (?, 1)", (t,))
        reqs[t] = []
        for blend in ("A", "A", "B"):
            cur = con.execute("INSERT INTO badges_badgerequirement (event_type, description, "
                              "blend, template_id) VALUES (?, '', ?, ?)", (PASSING, blend, t))
            rid = int(cur.lastrowid)
            reqs[t].append((rid, blend))
            con.execute("INSERT INTO badges_datarule (data_path, operator, value, "
                        "requirement_id) VALUES ('course.course_key', 'eq', ?, ?)",
                        (f"course-v1:Bench+C{rid}+2025", rid))
    users, progress, fulfil, creds, badges = [], [], [], [], []
    pid = cid = 0
    for n in range(1, learners + 1):
        name = f"learner{n}"
        users.append(("!", 0, name, "L", str(n), f"{name}@example.org", 0, 1, now, None, n))
        for t in rng.sample(range(1, TEMPLATES + 1), 2):
            pid += 1
            progress.append((pid, name, t))
            done = rng.sample(reqs[t], rng.randint(1, 3))
            fulfil.extend((blend, pid, rid) for rid, blend in done)
            if {b for _, b in done} == {"A", "B"}:
                cid += 1
                creds.append((cid, now, now, t, name, "awarded", uuid.uuid4().hex, ctype))
                badges.append((cid, "accepted", uuid.uuid4().hex))
    con.executemany("INSERT INTO core_user (password, is_superuser, username, first_name, "
                    "last_name, email, is_staff, is_active, date_joined, full_name, lms_user_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", users)
    con.executemany("INSERT INTO badges_badgeprogress (id, username, template_id) VALUES "
                    "(?, ?, ?)", progress)
    con.executemany("INSERT INTO badges_fulfillment (blend, progress_id, requirement_id) "
                    "VALUES (?, ?, ?)", fulfil)
    con.executemany("INSERT INTO credentials_usercredential (id, created, modified, "
                    "credential_id, username, status, uuid, credential_content_type_id) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?)", creds)
    con.executemany("INSERT INTO badges_credlybadge VALUES (?, ?, ?)", badges)
    con.commit()
    con.close()
    return {"learners": learners, "progress": len(progress), "fulfillments": len(fulfil),
            "badges": len(badges), "requirements": TEMPLATES * 3}


def run(source: Path, target: Path) -> tuple[float, dict, int]:
    env = {**os.environ, "BADGETUI_DB": str(target)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "badgetui", "migrate", "credentials",
                           "--from", f"sqlite:///{source}", "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"migrate failed: {done.stderr.strip()}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return elapsed, json.loads(done.stdout), usage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        source, target = Path(work) / "credentials.sqlite3", Path(work) / "badgetui.db"
        started = time.perf_counter()
        sizes = build(source, args.learners)
        print(f"source: {', '.join(f'{k} {v:,}' for k, v in sizes.items())} "
              f"(built in {time.perf_counter() - started:.1f} s)")
        elapsed, report, rss = run(source, target)
        rows = sizes["learners"] + sizes["progress"] + sizes["fulfillments"] + sizes["badges"]
        created = report["created"]
        assert created.get("badges awarded", 0) == sizes["badges"], created
        assert created.get("fulfillments", 0) == sizes["fulfillments"], created
        print(f"migrate: {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s "
              f"({rows:,} learner, progress, fulfillment and badge rows); peak RSS {rss} MB")
        again, report, _ = run(source, target)
        assert report["changed"] is False, report["created"]
        print(f"second run (nothing to change): {again:.1f} s")


if __name__ == "__main__":
    main()
