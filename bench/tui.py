"""TUI benchmark on a large database (issue 5 targets: first screen < 1.5 s, every pane action
< 150 ms, peak memory < 300 MB).

The database holds 20 templates (three requirements and a penalty each) of a Credly and an
Accredible account, 100,000 learners, 1,000,000 progress rows (10 templates per learner, 1-2
fulfillments each), 200,000 badges (5 % revoked; a delivery job each, ~2,000 queued and ~1,000
failed) and 1,000,000 intake records (80 % processed, the rest ignored, duplicate, dropped or
rejected). A child process builds it once (schema by the project's migrations, rows by
executemany with journaling off; ~50 s) and caches it under `bench/.cache/` (or
`$BADGETUI_BENCH_CACHE`), keyed by DATASET_VERSION and the scale; every run first brings the
cached file's schema up to date (a new migration's indexes are built there, and timed). No
ANALYZE: the app leaves SQLite without statistics, so the plans are the ones users get.

The console then runs headless in this process: time to the first screen (from importing the
app to the Templates table filled and the status line loaded), then on the Progress, Badges and
Events panes: opening the tab (its key), the next page (ctrl+f), a learner filter (typed into
the pane's filter box). An action ends when the app state shows its result and the table has
painted; waits poll the app state, and each action starts once the previous one has settled.
Last, a child process times the SQL each list filter should use, and forms to avoid (marked
AVOID), with their query plans (`--no-shapes` skips it).

    python bench/tui.py [--rebuild] [--scale 1.0] [--no-shapes]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Bump when the generated rows change: the cached database is rebuilt.
DATASET_VERSION = 1
CACHE_DIR = Path(os.environ.get("BADGETUI_BENCH_CACHE", ROOT / "bench" / ".cache"))

LEARNERS = 100_000
TEMPLATES = 20
PER_LEARNER = 10  # progress rows per learner: 1,000,000 at scale 1
COMPLETE = 0.2  # share of progress rows complete, each with a badge: 200,000 at scale 1
INTAKE = 1_000_000
PAGE = 200

FIRST_SCREEN_TARGET = 1.5
ACTION_TARGET = 0.150
MEMORY_TARGET_MB = 300
SHAPE_TARGET = 0.050  # one page of one query; the pane adds rendering to it

NOW = datetime(2026, 11, 20, 12, 0)
FIRST = ("ann", "bob", "carla", "dmitri", "eve", "farid", "grace", "hiro", "ines", "jon", "kemal",
         "lena", "mo", "nia", "oskar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "vik",
         "wen", "xavi", "yara", "zoe")
LAST = ("smith", "garcia", "kim", "okafor", "novak", "rossi", "tanaka", "muller", "silva",
        "khan", "dubois", "jensen", "ivanova", "nguyen", "cohen", "haddad", "lopez")
COURSE_PASSING = "org.openedx.learning.course.passing.status.updated.v1"
OUTCOMES = (("processed", 0.80), ("ignored", 0.12), ("duplicate", 0.05), ("dropped", 0.02),
            ("rejected", 0.01))


# -- building the database (child process) ---------------------------------------------------


def stamp(moment: datetime) -> str:
    """A datetime as Peewee stores it in SQLite."""
    return moment.isoformat(" ")


def username(n: int) -> str:
    return f"{FIRST[n % len(FIRST)]}.{LAST[(n // len(FIRST)) % len(LAST)]}{n}"


def uuid_of(rnd: random.Random) -> str:
    """A version-4-looking UUID from the seeded generator (reruns build the same rows)."""
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"


def course(t: int, part: str) -> str:
    return f"course-v1:Bench+T{t:02d}{part}+2026"


def build(path: Path, scale: float) -> dict[str, Any]:
    """Create the schema with the migrations, then fill it with raw executemany."""
    from badgetui.store.database import make_database, migrate

    database = make_database(str(path))
    database.connect()
    with database.atomic():
        migrate(database)
    database.close()

    rnd = random.Random(5)
    learners = max(100, int(LEARNERS * scale))
    intake = max(1000, int(INTAKE * scale))
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-400000")
    con.execute("BEGIN")
    created = stamp(NOW - timedelta(days=400))
    con.executemany(
        "INSERT INTO provider_account (id, provider, identifier, name, api_key, key_created_at,"
        " created_at, last_sync_at, last_sync_result, paused_reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '')",
        [(1, "credly", "4f2c7a80-5d1e-4c3b-9a77-0c5e2b1d9f10", "Bench University",
          "cr-key-0001", stamp(datetime.now() - timedelta(days=30)), created, created),
         (2, "accredible", "Bench Academy", "Bench Academy", "ac-key-0002", None, created,
          created)],
    )
    templates = [(t + 1, 1 if t < 12 else 2) for t in range(TEMPLATES)]
    con.executemany(
        "INSERT INTO template (id, account_id, provider, external_id, name, description,"
        " image_url, state, is_active, stale, deleted, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, '', '', 'active', 1, 0, 0, ?, ?)",
        [(tid, acct, "credly" if acct == 1 else "accredible", f"ext-{tid:04d}",
          f"Bench badge {tid:02d}", created, created) for tid, acct in templates],
    )
    requirements: dict[int, list[int]] = {}
    rid = 0
    for tid, _ in templates:
        for pos, (part, group) in enumerate((("x", "A"), ("y", "A"), ("z", "B"))):
            rid += 1
            requirements.setdefault(tid, []).append(rid)
            con.execute(
                'INSERT INTO requirement (id, template_id, key, event_type, "group", description,'
                " position) VALUES (?, ?, ?, ?, ?, '', ?)",
                (rid, tid, part, COURSE_PASSING, group, pos))
            con.executemany(
                "INSERT INTO data_rule (requirement_id, path, op, value, position)"
                " VALUES (?, ?, 'eq', ?, ?)",
                [(rid, "is_passing", "true", 0),
                 (rid, "course.course_key", course(tid, part.upper()), 1)])
        con.execute("INSERT INTO penalty (id, template_id, event_type, description, position)"
                    " VALUES (?, ?, ?, '', 0)", (tid, tid, COURSE_PASSING))
        con.execute("INSERT INTO penalty_requirement (penalty_id, requirement_id) VALUES (?, ?)",
                    (tid, requirements[tid][2]))
        con.executemany(
            "INSERT INTO data_rule (penalty_id, path, op, value, position)"
            " VALUES (?, ?, 'eq', ?, ?)",
            [(tid, "is_passing", "false", 0), (tid, "course.course_key", course(tid, "Z"), 1)])

    con.executemany(
        "INSERT INTO learner (id, username, email, name, lms_id, is_active, updated_at)"
        " VALUES (?, ?, ?, ?, ?, 1, ?)",
        ((n, username(n), f"{username(n)}@example.org", username(n).replace(".", " ").title(),
          n, created) for n in range(1, learners + 1)),
    )

    span = 365 * 86400
    progress_id = badge_id = 0
    samples: dict[str, str] = {}
    chunk = 2000
    for first in range(1, learners + 1, chunk):
        progress_rows, fulfillment_rows, badge_rows, job_rows = [], [], [], []
        for learner in range(first, min(first + chunk, learners + 1)):
            for tid in rnd.sample(range(1, TEMPLATES + 1), PER_LEARNER):
                progress_id += 1
                updated = NOW - timedelta(seconds=rnd.randrange(span))
                reqs = requirements[tid]
                earned = rnd.random() < COMPLETE
                held: int | None = None
                done = [reqs[rnd.randrange(3)]]
                complete = False
                if earned:
                    badge_id += 1
                    state, job, error = badge_row(rnd)
                    revoked = state in ("revoked", "cancelled")
                    # A revocation's penalty resets z: the progress is incomplete again.
                    done = [reqs[rnd.randrange(2)]] + ([] if revoked else [reqs[2]])
                    complete = not revoked
                    held = None if revoked else badge_id
                    badge_rows.append((
                        badge_id, uuid_of(rnd), learner, tid,
                        "revoked" if revoked else "awarded", state,
                        f"{rnd.getrandbits(48):012x}" if state in ("issued", "revoked") else None,
                        error, stamp(updated), uuid_of(rnd),
                        stamp(updated + timedelta(days=3)) if revoked else None,
                        uuid_of(rnd) if revoked else None,
                        "penalty z" if revoked else "",
                        json.dumps({"awarded": {"event_id": "e", "requirements": [
                            {"id": "x", "group": "A", "rules": ["is_passing eq true"],
                             "event_id": "e", "event_time": stamp(updated)}]}}),
                        stamp(updated)))
                    account = 1 if tid <= 12 else 2
                    job_rows.append((badge_id, account, "issue", job, 3 if job == "failed" else 1,
                                     stamp(updated), error, stamp(updated), stamp(updated)))
                    if revoked:
                        job_rows.append((badge_id, account, "revoke", "done", 1, stamp(updated),
                                         "", stamp(updated), stamp(updated)))
                    if job == "failed":
                        samples.setdefault("failed_badge_learner", username(learner))
                groups = len({"A" if r != reqs[2] else "B" for r in done})
                progress_rows.append((progress_id, learner, tid, groups, int(complete), held,
                                      stamp(updated)))
                fulfillment_rows.extend(
                    (progress_id, r, uuid_of(rnd), stamp(updated), stamp(updated)) for r in done)
        con.executemany("INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?, ?)", progress_rows)
        con.executemany(
            "INSERT INTO fulfillment (progress_id, requirement_id, event_id, event_time,"
            " fulfilled_at) VALUES (?, ?, ?, ?, ?)", fulfillment_rows)
        con.executemany(
            "INSERT INTO badge (id, uuid, learner_id, template_id, status, provider_state,"
            " external_id, last_error, awarded_at, award_event_id, revoked_at, revoke_event_id,"
            " revoke_reason, evidence, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", badge_rows)
        con.executemany(
            "INSERT INTO delivery_job (badge_id, account_id, kind, state, attempts,"
            " next_attempt_at, last_error, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", job_rows)

    con.executemany(
        "INSERT INTO intake_record (event_id, ref_id, event_type, outcome, reason, source, line,"
        " username, event_time, received_at, payload, effects)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        intake_rows(rnd, intake, learners),
    )
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    # Learners picked for the filters: one in the middle, and ones with badges / records.
    mid = learners // 2
    samples.update({"learner": username(mid), "learner2": username(mid + 7),
                    "learner3": username(learners // 3), "prefix": username(mid)[:7]})
    samples.setdefault("failed_badge_learner", samples["learner"])
    return {"learners": learners, "progress": progress_id, "badges": badge_id,
            "intake": intake, "samples": samples}


def badge_row(rnd: random.Random) -> tuple[str, str, str]:
    """(provider state, delivery job state, last error) of a new badge."""
    draw = rnd.random()
    if draw < 0.05:
        return rnd.choice(("revoked", "cancelled")), "done", ""
    if draw < 0.06:
        return "created", "queued", ""
    if draw < 0.065:
        return "error", "failed", "credly 422: recipient email is invalid"
    return "issued", "done", ""


def intake_rows(rnd: random.Random, count: int, learners: int) -> Iterator[tuple[Any, ...]]:
    outcomes = [o for o, _ in OUTCOMES]
    weights = [w for _, w in OUTCOMES]
    start = NOW - timedelta(days=365)
    step = 365 * 86400 / count
    for n in range(count):
        outcome = rnd.choices(outcomes, weights)[0]
        learner = rnd.randrange(1, learners + 1)
        user = None if outcome == "rejected" else username(learner)
        ref = None if outcome == "rejected" else uuid_of(rnd)
        received = start + timedelta(seconds=n * step)
        t = rnd.randrange(1, TEMPLATES + 1)
        payload = None if outcome == "rejected" else json.dumps({
            "is_passing": rnd.random() < 0.85,
            "course": {"course_key": course(t, rnd.choice("XYZ")), "display_name": "Course"},
            "user": {"id": learner, "is_active": True,
                     "pii": {"username": user, "email": f"{user}@example.org", "name": user}}})
        reason = {"ignored": f"no active template requires {COURSE_PASSING}",
                  "duplicate": "event id already processed", "dropped": "unknown event type",
                  "rejected": "not JSON: Expecting value: line 1 column 1"}.get(outcome, "")
        effects = f"progress {user} -> Bench badge {t:02d}" if outcome == "processed" else ""
        yield (ref if outcome == "processed" else None, ref, COURSE_PASSING, outcome, reason,
               "redis:openedx-learning", n + 1, user, stamp(received - timedelta(seconds=2)),
               stamp(received), payload, effects)


def cached_database(rebuild: bool, scale: float) -> tuple[Path, dict[str, Any]]:
    """The benchmark database: built once in a child process, then reused."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"tui-v{DATASET_VERSION}-x{scale:g}.db"
    meta_path = path.with_suffix(".json")
    if rebuild or not path.exists() or not meta_path.exists():
        for stale in (path, meta_path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        print(f"building {path.name} (once; cached) ...", flush=True)
        started = time.perf_counter()
        tmp = path.with_suffix(".building")
        tmp.unlink(missing_ok=True)
        out = child("build", str(tmp), f"{scale:g}")
        tmp.rename(path)
        meta_path.write_text(out)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"built in {time.perf_counter() - started:.1f} s (builder peak {rss:.0f} MB), "
              f"{path.stat().st_size / 2**20:.0f} MB")
    meta = json.loads(meta_path.read_text())
    applied = json.loads(child("migrate", str(path)))
    if applied["applied"]:
        print(f"migrated the cached database: {', '.join(applied['applied'])} in "
              f"{applied['seconds']:.2f} s")
    return path, meta


def child(*args: str) -> str:
    """Run this script in a child process (the parent's memory stays the app's) → its stdout."""
    done = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                          stdout=subprocess.PIPE, text=True)
    return done.stdout


def migrate_cached(path: Path) -> dict[str, Any]:
    from badgetui.store.database import make_database, migrate

    database = make_database(str(path))
    database.connect()
    started = time.perf_counter()
    with database.atomic():
        applied = migrate(database)
    database.close()
    return {"applied": applied, "seconds": time.perf_counter() - started}


# -- the console, headless (this process) ----------------------------------------------------


class Timeout(RuntimeError):
    pass


async def until(condition: Callable[[], bool], started: float, timeout: float = 60.0) -> float:
    """Poll the app state (between event-loop turns) → seconds since `started`."""
    while not condition():
        if time.perf_counter() - started > timeout:
            raise Timeout("the app did not reach the expected state")
        await asyncio.sleep(0.001)
    return time.perf_counter() - started


def text_of(widget: Any) -> str:
    content = widget.content  # Static: what was last passed to update()
    return str(getattr(content, "plain", content))


class Paints:
    """Counts the times a widget paints (renders lines for the screen)."""

    def __init__(self, widget: Any) -> None:
        self.count = 0
        render_lines = widget.render_lines

        def counted(crop: Any) -> Any:
            self.count += 1
            return render_lines(crop)

        widget.render_lines = counted  # the instance's, so only this widget is counted

    def since(self, mark: int) -> bool:
        return self.count > mark


async def settle(app: Any, pilot: Any) -> None:
    """Let the previous action's workers and messages finish (not timed). A worker replaced by
    a newer one (exclusive groups) is cancelled: it counts as finished."""
    while running := [w for w in app.workers if not w.is_finished]:
        await asyncio.gather(*(w.wait() for w in running), return_exceptions=True)
    await pilot.pause()


async def drive(path: Path, meta: dict[str, Any]) -> dict[str, list[float]]:
    """Start the console on `path` and time what an operator does first. Keys are posted as a
    terminal would send them (`simulate_key`; `pilot.press` would also wait out animations), and
    an action is done when the app state shows its result and the table has painted since."""
    started = time.perf_counter()
    from textual.widgets import DataTable, Static

    from badgetui.settings import Settings
    from badgetui.tui.app import make_app

    app = make_app(Settings(db=str(path)))
    figures: dict[str, list[float]] = {}
    samples = meta["samples"]
    async with app.run_test(size=(160, 48)) as pilot:
        templates = app.query_one("#templates-table", DataTable)
        status = app.query_one("#status", Static)
        paints = Paints(templates)
        figures["first screen"] = [await until(
            lambda: templates.row_count >= TEMPLATES and "queue" in text_of(status)
            and paints.since(0), started)]

        for tab, key, learners in (
            ("progress", "g", (samples["learner"], samples["learner2"], samples["learner3"])),
            ("badges", "b", (samples["failed_badge_learner"], samples["learner"],
                             samples["learner2"])),
            ("events", "e", (samples["learner"], samples["learner2"], samples["learner3"])),
        ):
            figures.update(await pane_actions(app, pilot, tab, key, learners))
        await settle(app, pilot)
    return figures


async def pane_actions(
    app: Any, pilot: Any, tab: str, key: str, learners: tuple[str, ...]
) -> dict[str, list[float]]:
    """Open a paged pane with its key, page forward three times (ctrl+f: the table keeps
    pagedown for its cursor), filter by three learners (the first Input of the pane's toolbar:
    an exact username or a prefix, both match)."""
    from textual.widgets import DataTable, Input, Static

    pane = app.query_one(f"#{tab}-pane")
    table = pane.query_one(DataTable)
    pager = pane.query_one(".pager", Static)
    box = pane.query_one(".toolbar Input", Input)
    column = pane.COLUMNS.index("Learner")
    tabs = app.query_one("#tabs")
    paints = Paints(table)

    def first_page() -> bool:
        return table.row_count > 0 and text_of(pager).startswith("rows 1–")

    def only(name: str) -> bool:
        return first_page() and all(
            str(table.get_row_at(i)[column]).startswith(name) for i in range(table.row_count))

    figures: dict[str, list[float]] = {}
    await settle(app, pilot)
    mark, t0 = paints.count, time.perf_counter()
    app.simulate_key(key)
    figures[f"{tab}: open"] = [await until(
        lambda: tabs.active == tab and first_page() and paints.since(mark), t0)]

    pages = []
    for page in (2, 3, 4):
        label = f"rows {(page - 1) * PAGE + 1:,}–"
        await settle(app, pilot)
        mark, t0 = paints.count, time.perf_counter()
        app.simulate_key("ctrl+f")
        pages.append(await until(
            lambda label=label, mark=mark: text_of(pager).startswith(label)
            and paints.since(mark), t0))
    figures[f"{tab}: next page"] = pages

    filters = []
    for name in learners:
        await settle(app, pilot)
        mark, t0 = paints.count, time.perf_counter()
        box.value = name
        filters.append(await until(
            lambda name=name, mark=mark: only(name) and paints.since(mark), t0))
        await settle(app, pilot)
        box.value = ""
        await until(lambda: first_page() and table.row_count == PAGE, time.perf_counter())
    figures[f"{tab}: learner filter"] = filters
    return figures


# -- query shapes (child process) ------------------------------------------------------------


Shape = tuple[str, str, tuple[Any, ...], bool]


def shapes(meta: dict[str, Any]) -> list[Shape]:
    """The SQL each filtered, paged list should run, and forms to avoid:
    (label, sql, parameters, recommended). A prefix runs to prefix + U+10FFFF (a range the
    username index serves; `LIKE 'p%'` is case-insensitive and cannot use it)."""
    s = meta["samples"]
    learner, few, many = s["learner"], s["prefix"], "a"  # few: ~200 learners, many: ~4,000
    top = "\U0010ffff"
    progress = ("SELECT p.id, l.username, t.name, p.fulfilled_groups, p.complete, p.badge_id,"
                " p.updated_at FROM progress p JOIN learner l ON l.id = p.learner_id"
                " JOIN template t ON t.id = p.template_id")
    newest = " ORDER BY p.updated_at DESC, p.id DESC LIMIT 201 OFFSET ?"
    badges = ("SELECT b.id, l.username, t.name, b.status, b.provider_state, b.external_id,"
              " b.awarded_at, b.last_error FROM badge b JOIN learner l ON l.id = b.learner_id"
              " JOIN template t ON t.id = b.template_id")
    page = " ORDER BY b.id DESC LIMIT 201 OFFSET ?"
    intake = ("SELECT id, received_at, outcome, ref_id, username, line, reason, effects"
              " FROM intake_record")
    ipage = " ORDER BY id DESC LIMIT 201 OFFSET ?"
    one = "(SELECT id FROM learner WHERE username = ?)"
    ids = "(SELECT id FROM learner WHERE username >= ? AND username < ?)"
    dense = " (l.username || '') >= ? AND (l.username || '') < ?"

    def capped(sql: str, cap: int = 10_001) -> str:
        return f"SELECT COUNT(*) FROM ({sql} LIMIT {cap})"

    pids = ", ".join(str(n) for n in range(1, 400_001, 2000))  # a page of 200 progress ids
    return [
        ("progress: all", progress + newest, (0,), True),
        ("progress: all, page 50", progress + newest, (50 * PAGE,), True),
        ("progress: template", progress + " WHERE p.template_id = ?" + newest, (7, 0), True),
        ("progress: complete", progress + " WHERE p.complete = 1" + newest, (0,), True),
        ("progress: incomplete", progress + " WHERE p.complete = 0" + newest, (0,), True),
        ("progress: template + complete",
         progress + " WHERE p.template_id = ? AND p.complete = 1" + newest, (7, 0), True),
        ("progress: learner exact", progress + f" WHERE p.learner_id = {one}" + newest,
         (learner, 0), True),
        ("progress: prefix, few learners (id IN learners)",
         progress + f" WHERE p.learner_id IN {ids}" + newest, (few, few + top, 0), True),
        ("progress: prefix, many learners (|| '' scan)",
         progress + " WHERE" + dense + newest, (many, many + top, 0), True),
        ("progress: prefix, many learners (id IN learners)",
         progress + f" WHERE p.learner_id IN {ids}" + newest, (many, many + top, 0), True),
        ("progress: template + 0 + prefix, few (id IN)",
         progress + f" WHERE p.template_id + 0 = ? AND p.learner_id IN {ids}" + newest,
         (7, few, few + top, 0), True),
        ("progress: fulfilled keys of a page",
         "SELECT f.progress_id, r.key FROM fulfillment f JOIN requirement r"
         f" ON r.id = f.requirement_id WHERE f.progress_id IN ({pids}) ORDER BY r.position",
         (), True),
        ("progress: count all", capped("SELECT 1 FROM progress"), (), True),
        ("progress: count complete", capped("SELECT 1 FROM progress WHERE complete = 1"), (),
         True),
        ("progress: count template", capped("SELECT 1 FROM progress WHERE template_id = 7"), (),
         True),
        ("progress: count template + complete",
         capped("SELECT 1 FROM progress WHERE template_id = 7 AND complete = 1"), (), True),
        ("progress: count prefix, many (id IN learners)",
         capped(f"SELECT 1 FROM progress WHERE learner_id IN {ids}"), (many, many + top), True),
        ("AVOID progress: prefix LIKE (no index)",
         progress + " WHERE l.username LIKE ?" + newest, (few + "%", 0), False),
        ("AVOID progress: count prefix, many (|| '' scan)",
         capped("SELECT 1 FROM progress p JOIN learner l ON l.id = p.learner_id WHERE" + dense),
         (many, many + top), False),
        ("AVOID progress: template + prefix, few (id IN)",
         progress + f" WHERE p.template_id = ? AND p.learner_id IN {ids}" + newest,
         (7, few, few + top, 0), False),
        ("AVOID badges: status awarded + prefix, few (id IN)",
         badges + f" WHERE b.status = 'awarded' AND b.learner_id IN {ids}" + page,
         (few, few + top, 0), False),
        ("badges: status || '' awarded + prefix, few (id IN)",
         badges + f" WHERE b.status || '' = 'awarded' AND b.learner_id IN {ids}" + page,
         (few, few + top, 0), True),
        ("AVOID progress: count template, learner joined",
         capped("SELECT 1 FROM progress p JOIN learner l ON l.id = p.learner_id"
                " WHERE p.template_id = 7", 100_001), (), False),

        ("badges: all", badges + page, (0,), True),
        ("badges: all, page 50", badges + page, (50 * PAGE,), True),
        ("badges: status revoked", badges + " WHERE b.status = ?" + page, ("revoked", 0), True),
        ("badges: status awarded", badges + " WHERE b.status = ?" + page, ("awarded", 0), True),
        ("badges: provider_state error", badges + " WHERE b.provider_state = ?" + page,
         ("error", 0), True),
        ("badges: template", badges + " WHERE b.template_id = ?" + page, (7, 0), True),
        ("badges: template + status",
         badges + " WHERE b.template_id = ? AND b.status = ?" + page, (7, "revoked", 0), True),
        ("badges: learner exact", badges + f" WHERE b.learner_id = {one}" + page,
         (s["failed_badge_learner"], 0), True),
        ("badges: prefix, few (id IN learners)",
         badges + f" WHERE b.learner_id IN {ids}" + page, (few, few + top, 0), True),
        ("badges: prefix, many (|| '' scan)", badges + " WHERE" + dense + page,
         (many, many + top, 0), True),
        ("badges: failed only (error state or failed job)",
         badges + " WHERE (b.provider_state = 'error' OR b.id IN"
         " (SELECT badge_id FROM delivery_job WHERE state = 'failed'))" + page, (0,), True),
        ("badges: count status awarded", capped("SELECT 1 FROM badge WHERE status = 'awarded'"),
         (), True),
        ("badges: count template + status",
         capped("SELECT 1 FROM badge WHERE template_id = 7 AND status = 'awarded'"), (), True),
        ("badges: count template, learner joined",
         capped("SELECT 1 FROM badge b JOIN learner l ON l.id = b.learner_id"
                " WHERE b.template_id = 7"), (), True),
        ("badges: count failed only",
         capped("SELECT 1 FROM badge b WHERE b.provider_state = 'error' OR b.id IN"
                " (SELECT badge_id FROM delivery_job WHERE state = 'failed')"), (), True),
        ("AVOID badges: count failed by last_error != ''",
         capped("SELECT 1 FROM badge WHERE last_error != ''"), (), False),

        ("intake: all", intake + ipage, (0,), True),
        ("intake: all, page 50", intake + ipage, (50 * PAGE,), True),
        ("intake: outcome ignored", intake + " WHERE outcome = ?" + ipage, ("ignored", 0), True),
        ("intake: outcome rejected", intake + " WHERE outcome = ?" + ipage, ("rejected", 0),
         True),
        ("intake: learner exact", intake + " WHERE username = ?" + ipage, (learner, 0), True),
        ("intake: prefix, few (range)", intake + " WHERE username >= ? AND username < ?" + ipage,
         (few, few + top, 0), True),
        ("intake: prefix, many (range)",
         intake + " WHERE username >= ? AND username < ?" + ipage, (many, many + top, 0), True),
        ("intake: outcome + learner exact",
         intake + " WHERE outcome = ? AND username = ?" + ipage, ("processed", learner, 0), True),
        ("intake: outcome || '' + prefix, few (range)",
         intake + " WHERE outcome || '' = ? AND username >= ? AND username < ?" + ipage,
         ("processed", few, few + top, 0), True),
        ("intake: outcome || '' + prefix, many (range)",
         intake + " WHERE outcome || '' = ? AND username >= ? AND username < ?" + ipage,
         ("processed", many, many + top, 0), True),
        ("intake: outcome || '' + username IN (list)",
         intake + " WHERE outcome || '' = ? AND username IN (?, ?)" + ipage,
         ("processed", learner, s["learner2"], 0), True),
        ("intake: count outcome", capped("SELECT 1 FROM intake_record WHERE outcome = 'ignored'"),
         (), True),
        ("intake: count prefix, many (range)",
         capped("SELECT 1 FROM intake_record WHERE username >= ? AND username < ?"),
         (many, many + top), True),
        ("intake: count outcome || '' + prefix, many (range)",
         capped("SELECT 1 FROM intake_record WHERE outcome || '' = 'processed'"
                " AND username >= ? AND username < ?"), (many, many + top), True),
        ("AVOID intake: outcome + prefix, few (range)",
         intake + " WHERE outcome = ? AND username >= ? AND username < ?" + ipage,
         ("processed", few, few + top, 0), False),
        ("AVOID intake: count outcome + prefix, many (range)",
         capped("SELECT 1 FROM intake_record WHERE outcome = 'processed'"
                " AND username >= ? AND username < ?"), (many, many + top), False),
        ("AVOID intake: outcome + username IN (list)",
         intake + " WHERE outcome = ? AND username IN (?, ?)" + ipage,
         ("processed", learner, s["learner2"], 0), False),

        ("status: queued, running, failed jobs",
         "SELECT state, COUNT(*) FROM delivery_job WHERE state IN ('queued', 'running',"
         " 'failed') GROUP BY state", (), True),
        ("AVOID status: jobs of every state",
         "SELECT state, COUNT(*) FROM delivery_job GROUP BY state", (), False),
        ("templates: awarded per template (subquery per template)",
         "SELECT t.id, (SELECT COUNT(*) FROM badge b WHERE b.template_id = t.id"
         " AND b.status = 'awarded') FROM template t", (), True),
        ("AVOID templates: awarded per template (GROUP BY)",
         "SELECT template_id, COUNT(id) FROM badge WHERE status = 'awarded'"
         " GROUP BY template_id", (), False),
    ]


def time_shapes(path: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Each shape's median time of three runs (on one connection, with the app's cache size)
    and its query plan."""
    from badgetui.store.database import SQLITE_PRAGMAS

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.execute(f"PRAGMA cache_size={SQLITE_PRAGMAS['cache_size']}")
    out = []
    for label, sql, params, recommended in shapes(meta):
        plan = "; ".join(row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql, params))
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            rows = con.execute(sql, params).fetchall()
            runs.append(time.perf_counter() - t0)
        out.append({"label": label, "seconds": statistics.median(runs), "rows": len(rows),
                    "plan": plan, "recommended": recommended})
    con.close()
    return out


# -- report ----------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build the database again")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the row counts")
    parser.add_argument("--no-shapes", action="store_true", help="skip the SQL query shapes")
    parser.add_argument("--build-only", action="store_true", help="build (or reuse) and stop")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        command, path, *rest = args.child
        if command == "build":
            print(json.dumps(build(Path(path), float(rest[0]))))
        elif command == "migrate":
            print(json.dumps(migrate_cached(Path(path))))
        elif command == "shapes":
            print(json.dumps(time_shapes(Path(path), json.loads(rest[0]))))
        return

    path, meta = cached_database(args.rebuild, args.scale)
    print(f"database: {meta['learners']:,} learners, {meta['progress']:,} progress rows, "
          f"{meta['badges']:,} badges, {meta['intake']:,} intake records "
          f"({path.stat().st_size / 2**20:.0f} MB)")
    if args.build_only:
        return
    with tempfile.TemporaryDirectory() as home:
        os.environ["BADGETUI_CONFIG"] = str(Path(home) / "none.toml")  # no user settings
        figures = asyncio.run(drive(path, meta))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\n{'console':<28} {'median':>9} {'max':>9}  target       runs (ms)")
    for name, values in figures.items():
        target = FIRST_SCREEN_TARGET if name == "first screen" else ACTION_TARGET
        med = statistics.median(values)
        print(f"{name:<28} {med * 1000:>7.0f}ms {max(values) * 1000:>7.0f}ms  "
              f"< {target * 1000:.0f} ms  {verdict(med, target)}  "
              + " ".join(f"{v * 1000:.0f}" for v in values))
    print(f"{'peak memory (this process)':<28} {peak:>7.0f}MB {'':>9}  "
          f"< {MEMORY_TARGET_MB} MB  {verdict(peak, MEMORY_TARGET_MB)}")

    if not args.no_shapes:
        print(f"\nquery shapes (a page: LIMIT 201; a count: capped at 10,001; "
              f"target < {SHAPE_TARGET * 1000:.0f} ms)")
        for shape in json.loads(child("shapes", str(path), json.dumps(meta))):
            mark = verdict(shape["seconds"], SHAPE_TARGET) if shape["recommended"] else "    "
            print(f"{shape['label']:<56} {shape['seconds'] * 1000:>6.1f}ms {mark}  "
                  f"{shape['plan']}")


if __name__ == "__main__":
    main()
