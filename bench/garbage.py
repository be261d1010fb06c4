"""Garbage benchmark: `badgetui events ingest` on a hostile file, memory bounded.

Writes (streamed, into a temporary directory) a file of mixed garbage: random bytes with and
without newlines, invalid UTF-8, lines far over the 16 MiB line limit, thousands of levels of
nesting, lone surrogates (as JSON escapes and as raw bytes), NULs, megabyte strings inside
valid events, CRLF, a BOM, with valid course-passing events sprinkled in. Then runs
`badgetui events ingest FILE --no-deliver --json` on it in a subprocess against a fresh SQLite
file, and prints the time, the lines and counts, and the child's peak RSS (its own
`ru_maxrss` from wait4, and the largest VmHWM seen in /proc while it ran). Every sprinkled valid
event must come out processed.

    python bench/garbage.py [--size-mb 1024] [--seed 7] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.domain.events import COURSE_PASSING
from badgetui.services import Services
from badgetui.services.lines import MAX_LINE
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings

MIB = 1024 * 1024
COURSE = "course-v1:Bench+Garbage+2026"
TEMPLATE = "00000000-0000-4000-8000-00000000ba5e"


def valid_event(n: int, *, display_name: str = "", name: str | None = None) -> bytes:
    return json.dumps({
        "id": f"garbage-good-{n}", "event_type": COURSE_PASSING,
        "time": "2026-11-01T09:00:00+00:00",
        "data": {"course_passing_status": {
            "is_passing": True,
            "course": {"course_key": COURSE, "display_name": display_name, "start": None,
                       "end": None},
            "user": {"id": n, "is_active": True,
                     "pii": {"username": f"good{n}", "email": f"good{n}@example.org",
                             "name": name if name is not None else f"Good {n}"}}}},
    }).encode()


class Writer:
    """Appends blocks of one kind at a time and keeps count of what went in."""

    def __init__(self, out: BinaryIO, rnd: random.Random) -> None:
        self.out = out
        self.rnd = rnd
        self.size = 0
        self.kinds: Counter[str] = Counter()
        self.good = 0

    def put(self, kind: str, data: bytes, end: bytes = b"\n") -> None:
        self.out.write(data + end)
        self.size += len(data) + len(end)
        self.kinds[kind] += 1

    def good_events(self, count: int) -> None:
        for _ in range(count):
            self.good += 1
            self.put("valid event", valid_event(self.good),
                     b"\r\n" if self.rnd.random() < 0.2 else b"\n")

    def random_without_newline(self, size: int) -> None:
        self.put("random bytes, one line", self.rnd.randbytes(size).replace(b"\n", b"\x00"))

    def random_with_newlines(self, size: int) -> None:
        data = self.rnd.randbytes(size)
        self.put("random bytes with newlines (blocks)", data)

    def over_limit(self, size: int) -> None:
        """One line longer than the limit, written in pieces (never whole in memory here)."""
        piece = (b'{"id": "over", "x": "' + b"x" * MIB)[:MIB]
        left = size
        while left > 0:
            chunk = piece[: min(left, MIB)]
            self.out.write(chunk)
            left -= len(chunk)
        self.out.write(b"\n")
        self.size += size + 1
        self.kinds["line over the limit"] += 1

    def deep(self, depth: int) -> None:
        if self.rnd.random() < 0.5:
            self.put("deep nesting", b"[" * depth + b"]" * depth)
        else:
            self.put("deep nesting", b'{"a":' * depth + b"1" + b"}" * depth)

    def surrogates(self) -> None:
        good = valid_event(0).replace(b"good0", b"\\ud800bad")
        self.put("lone surrogate (escape)", good.replace(b'"garbage-good-0"', b'"sur-%d"'
                                                          % self.size))
        raw = valid_event(0).replace(b"good0", b"\xed\xa0\x80bad")
        self.put("lone surrogate (raw bytes)", raw)

    def hostile_values(self) -> None:
        event = json.loads(valid_event(0))
        event["id"] = f"hostile-{self.size}"
        record = event["data"]["course_passing_status"]
        choice = self.rnd.randrange(5)
        if choice == 0:
            record["user"]["id"] = 10**100
        elif choice == 1:
            record["user"]["pii"]["username"] = "nul\x00name"
        elif choice == 2:
            event["time"] = "0001-01-01T00:00:00+01:00"
        elif choice == 3:
            record["user"]["pii"]["name"] = "n" * 300
        else:
            record["is_passing"] = "yes"
        self.put("hostile values", json.dumps(event).encode())

    def huge_string_event(self, size: int) -> None:
        self.good += 1
        self.put("valid event with a MB string",
                 valid_event(self.good, display_name="d" * size))


def generate(path: Path, size: int, seed: int) -> Writer:
    rnd = random.Random(seed)
    with path.open("wb", buffering=MIB) as out:
        out.write(b"\xef\xbb\xbf")
        writer = Writer(out, rnd)
        writer.size = 3
        while writer.size < size:
            writer.good_events(rnd.randint(5, 50))
            roll = rnd.random()
            if roll < 0.40:
                writer.random_without_newline(rnd.randint(64 * 1024, 4 * MIB))
            elif roll < 0.48:
                writer.random_with_newlines(rnd.randint(16 * 1024, 256 * 1024))
            elif roll < 0.51:
                writer.over_limit(rnd.randint(MAX_LINE + 1, 6 * MAX_LINE))
            elif roll < 0.65:
                writer.deep(rnd.choice([1_000, 10_000, 100_000, 1_000_000]))
            elif roll < 0.75:
                writer.put("NULs", b"\x00" * rnd.randint(1_000, MIB))
            elif roll < 0.85:
                writer.put("text, not JSON", ("lørem ipsum " * rnd.randint(100, 80_000))
                           .encode())
            elif roll < 0.92:
                writer.huge_string_event(rnd.randint(MIB, MAX_LINE - 1000))
            else:
                writer.surrogates()
                writer.hostile_values()
        writer.good_events(5)
        out.write(b"a last line without a newline")
        writer.size += 29
        writer.kinds["last line without newline"] += 1
    return writer


def prepare_database(db: Path) -> None:
    services = Services.open(Settings(db=str(db)))
    try:
        account = services.templates.add_account("credly", str(uuid.uuid4()), "bench-key-0000")
        from badgetui.store.models import ProviderAccount

        services.templates.upsert_synced(ProviderAccount.get_by_id(account.id),
                                         [SyncedTemplate(TEMPLATE, "Garbage bench")])
        services.config.import_text(json.dumps({"version": 1, "templates": [{
            "provider": "credly", "external_id": TEMPLATE, "active": True,
            "requirements": [{"id": "pass", "event_type": COURSE_PASSING, "rules": [
                {"path": "is_passing", "op": "eq", "value": "true"},
                {"path": "course.course_key", "op": "eq", "value": COURSE}]}],
            "penalties": []}]}))
    finally:
        services.close()


def vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="badgetui-garbage-"))
    try:
        events = work / "garbage.jsonl"
        db = work / "garbage.db"
        started = time.perf_counter()
        writer = generate(events, args.size_mb * MIB, args.seed)
        generated = time.perf_counter() - started
        print(f"file: {events.stat().st_size / MIB:,.0f} MiB in {generated:.1f} s; blocks: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(writer.kinds.items())))
        prepare_database(db)

        env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
        env.update(BADGETUI_DB=str(db), BADGETUI_CONFIG=str(work / "none.toml"))
        errors = work / "stderr.txt"
        started = time.perf_counter()
        with errors.open("wb") as err:
            child = subprocess.Popen(
                [sys.executable, "-m", "badgetui", "events", "ingest", str(events),
                 "--no-deliver", "--json"],
                stdout=subprocess.PIPE, stderr=err, env=env)
            hwm = [0]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.2):
                    hwm[0] = max(hwm[0], vm_hwm_kb(child.pid))

            watcher = threading.Thread(target=sample, daemon=True)
            watcher.start()
            assert child.stdout is not None
            out = child.stdout.read()
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            done.set()
            watcher.join()
        elapsed = time.perf_counter() - started
        counts = json.loads(out) if child.returncode == 0 else {}
        reports = 0
        longest = 0
        tracebacks = 0
        with errors.open("rb") as err:
            for line in err:
                reports += 1
                longest = max(longest, len(line.rstrip(b"\n")))
                tracebacks += line.startswith(b"Traceback")
        lines = sum(counts.get(k, 0) for k in ("processed", "ignored", "dropped", "duplicate",
                                                "rejected"))
        print(f"ingest: exit {child.returncode}, {elapsed:.1f} s "
              f"({events.stat().st_size / MIB / elapsed:,.1f} MiB/s), {lines:,} lines recorded")
        print("counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()
                                     if not isinstance(v, dict) and v is not None))
        print(f"problem reports on stderr: {reports:,} (longest {longest} characters), "
              f"tracebacks: {tracebacks}")
        with sqlite3.connect(db) as lite:
            (good,) = lite.execute("SELECT count(*) FROM intake_record WHERE outcome = "
                                   "'processed' AND event_id LIKE 'garbage-good-%'").fetchone()
        print(f"valid events written: {writer.good:,}; processed: {good:,}; lost: "
              f"{writer.good - good:,}")
        print(f"peak RSS of the ingest process: {usage.ru_maxrss / 1024:,.0f} MB (ru_maxrss), "
              f"VmHWM seen {hwm[0] / 1024:,.0f} MB")
        print(f"database: {db.stat().st_size / MIB:,.0f} MiB")
        if child.returncode != 0:
            sys.exit(f"ingest failed: {errors.read_text(errors='replace')[-2000:]}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
