"""Event-bus benchmark: events/s from a Redis stream into SQLite and PostgreSQL, with one and
with two `badgetui events consume` processes in one consumer group.

The storm shape of bench/processing.py (200 templates `(X or Y) and Z` plus a penalty, 5,000
learners, 85 % passing), 20,000 course-passing events pre-loaded into a fresh stream as the LMS
writes them (8 fields, schemaless Avro). Each run gets a fresh database and group; the consumers
run with `--drain` and exit once the stream is read. Timed from the first entry the group hands
out to the last acknowledgement (process start-up is shown apart).

Two consumers must end exactly where one does (same awarded and revoked counts): the penalty
makes the order of a learner's events matter, so a group commits its entries in stream order
whichever consumer holds them (`BusConsumer`). Two consumers therefore take turns; what overlaps
is one batch's reading and decoding with the other's commit. Several consumers buy availability
(a dead consumer's entries are taken over), not throughput on one stream; `waited` is the time
each spent waiting for the other's earlier batch.

    python bench/bus.py [--events 20000] [--redis redis://127.0.0.1:6379/0]
                        [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from badgetui.domain import avro
from badgetui.domain.events import COURSE_PASSING
from badgetui.services import Services
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from bench.processing import build_config, course


def entries(events: int, learners: int, templates: int, seed: int) -> list[dict[bytes, bytes]]:
    rnd = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    follows = [rnd.randrange(templates) for _ in range(learners)]
    out = []
    for n in range(events):
        learner = rnd.randrange(learners)
        t = follows[learner] if rnd.random() < 0.9 else rnd.randrange(templates)
        data = {"course_passing_status": {
            "is_passing": rnd.random() < 0.85,
            "course": {"course_key": course(t, rnd.choice("XYZ")), "display_name": "",
                       "start": None, "end": None},
            "user": {"id": learner, "is_active": True,
                     "pii": {"username": f"learner{learner}",
                             "email": f"learner{learner}@example.org",
                             "name": f"Learner {learner}"}}}}
        out.append({
            b"type": COURSE_PASSING.encode(),
            b"id": str(uuid.UUID(int=rnd.getrandbits(128))).encode(),
            b"source": b"openedx/lms/web",
            b"time": (start + timedelta(seconds=n)).isoformat().encode(),
            b"minorversion": b"0",
            b"sourcehost": b"lms-bench",
            b"sourcelib": b"11.2.0",
            b"event_data": avro.encode(COURSE_PASSING, data),
        })
    return out


def configure(db: str, templates: int) -> None:
    services = Services.open(Settings(db=db))
    try:
        account = services.templates.add_account("credly", str(uuid.uuid4()), "bench-key-0000")
        ids = [str(uuid.UUID(int=i + 1)) for i in range(templates)]
        from badgetui.store.models import ProviderAccount

        services.templates.upsert_synced(
            ProviderAccount.get_by_id(account.id),
            [SyncedTemplate(ext, f"Template {i}") for i, ext in enumerate(ids)],
        )
        services.config.import_text(json.dumps(build_config(ids)))
    finally:
        services.close()


@contextmanager
def sqlite_db(work: Path, label: str) -> Iterator[str]:
    yield str(work / f"{label}.db")


@contextmanager
def postgres_db(server: str, label: str) -> Iterator[str]:
    import psycopg2
    from psycopg2 import sql

    name = f"badgetui_bus_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        admin.close()


def run(client: redis.Redis, url: str, db: str, loaded: list[dict[bytes, bytes]],
        consumers: int, batch: int) -> dict[str, Any]:
    stream = f"badgetui-bench-{uuid.uuid4().hex[:8]}"
    pipe = client.pipeline(transaction=False)
    for fields in loaded:
        pipe.xadd(stream, fields)
    pipe.execute()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    env.update(BADGETUI_DB=db, BADGETUI_CONFIG=os.devnull, BADGETUI_REDIS_URL=url,
               BADGETUI_BUS_STREAM=stream, BADGETUI_BUS_START="0", BADGETUI_BUS_BLOCK="0.2",
               BADGETUI_BUS_BATCH=str(batch))
    launched = time.perf_counter()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "badgetui", "events", "consume", "--drain", "--json",
         "--consumer", f"bench-{n}"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True) for n in range(consumers)]
    first = done = None
    total = len(loaded)
    try:
        while done is None:
            groups = [g for g in client.xinfo_groups(stream) if g["name"] == b"badgetui"] \
                if client.exists(stream) else []
            if groups:
                read = groups[0]["entries-read"] or 0
                if first is None and read > 0:
                    first = time.perf_counter()
                if read >= total and groups[0]["pending"] == 0:
                    done = time.perf_counter()
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a consumer failed")
            time.sleep(0.01)
        outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        client.delete(stream, f"{stream}-badgetui-dlq")
    assert first is not None
    processed = sum(o["processed"] for o in outputs)
    return {"rate": total / (done - first), "seconds": done - first,
            "startup": first - launched, "processed": processed,
            "duplicates": sum(o["duplicate"] for o in outputs),
            "dead_lettered": sum(o["dead_lettered"] for o in outputs),
            "shares": [o["acked"] for o in outputs],
            "waited": [o["waited_ms"] / 1000 for o in outputs],
            "awarded": sum(o["awarded"] for o in outputs),
            "revoked": sum(o["revoked"] for o in outputs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--learners", type=int, default=5_000)
    parser.add_argument("--templates", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500, help="entries per read (bus_batch)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default=os.environ.get("BADGETUI_TEST_POSTGRES"),
                        help="server URL; PostgreSQL runs are skipped without one")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis)
    loaded = entries(args.events, args.learners, args.templates, args.seed)
    work = Path(tempfile.mkdtemp(prefix="badgetui-bus-bench-"))
    backends: list[tuple[str, Any]] = [("sqlite", lambda label: sqlite_db(work, label))]
    if args.postgres:
        backends.append(("postgresql", lambda label: postgres_db(args.postgres, label)))
    print(f"{args.events} events, {args.learners} learners, {args.templates} templates, "
          f"batch {args.batch}")
    for backend, make_db in backends:
        for consumers in (1, 2):
            with make_db(f"{backend}{consumers}") as db:
                configure(db, args.templates)
                result = run(client, args.redis, db, loaded, consumers, args.batch)
            print(f"{backend:<10} {consumers} consumer{'s' if consumers > 1 else ' '}: "
                  f"{result['rate']:>7,.0f} events/s ({result['seconds']:.2f} s; start-up "
                  f"{result['startup']:.2f} s) processed {result['processed']}, duplicates "
                  f"{result['duplicates']}, dead-lettered {result['dead_lettered']}, shares "
                  f"{result['shares']} (waited {', '.join(f'{w:.2f}' for w in result['waited'])}"
                  f" s), awarded {result['awarded']}, revoked {result['revoked']}", flush=True)


if __name__ == "__main__":
    main()
