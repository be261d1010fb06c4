"""Event-bus test helpers: a real Redis on loopback, one fresh stream per test, entries built
the way the LMS writes them (openedx-events.md §7)."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from badgetui.domain import avro
from badgetui.services.bus import BusConfig, BusConsumer, ConsumerStats
from tests.helpers import (
    config_text,
    course_event,
    penalty,
    requirement,
    rule,
    template_config,
)

REDIS_URL = os.environ.get("BADGETUI_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    return client


def entry(event: dict[str, Any], **override: bytes | None) -> dict[bytes, bytes]:
    """The eight fields of a stream entry for an event in the JSON Lines shape of helpers.py;
    `override` replaces fields (None removes one)."""
    fields: dict[str, bytes | None] = {
        "type": event["event_type"].encode(),
        "id": event["id"].encode(),
        "source": b"openedx/lms/web",
        "time": event["time"].encode(),
        "minorversion": b"0",
        "sourcehost": b"lms-7f9c",
        "sourcelib": b"11.2.0",
        "event_data": avro.encode(event["event_type"], event["data"]),
    }
    fields.update(override)
    return {k.encode(): v for k, v in fields.items() if v is not None}


def produce(client: redis.Redis, stream: str, *events: dict[str, Any]) -> list[bytes]:
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, entry(event))
    return pipe.execute()


def bus_config(stream: str, **values: Any) -> BusConfig:
    base: dict[str, Any] = {"url": REDIS_URL, "stream": stream, "group": "badgetui",
                            "consumer": "test-1", "dlq_stream": f"{stream}-badgetui-dlq",
                            "block": 0.1, "retry_delay": 0.05, "start": "0"}
    base.update(values)
    return BusConfig(**base)


def consume(services: Any, stream: str, client: redis.Redis | None = None,
            **values: Any) -> ConsumerStats:
    """Run a consumer in this process until the stream is drained."""
    config = bus_config(stream, **values)
    consumer = BusConsumer(services.intake, config, services.clock, client=client, drain=True)
    return consumer.run()


def bus_env(db: Path | str, tmp_path: Path, stream: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    env.update(BADGETUI_DB=str(db), BADGETUI_CONFIG=str(tmp_path / "none.toml"),
               BADGETUI_REDIS_URL=REDIS_URL, BADGETUI_BUS_STREAM=stream,
               BADGETUI_BUS_START="0", BADGETUI_BUS_BLOCK="0.2",
               BADGETUI_BUS_RETRY_DELAY="0.05")
    env.update(extra)
    return env


def consumer_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "badgetui", "events", "consume", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def db_count(db: Path | str, sql: str) -> int:
    """A count read beside the consumers, without binding the models: SQLite (WAL lets
    readers in) or PostgreSQL (the URL's query parameters, e.g. a search_path, go to libpq)."""
    db = str(db)
    for _ in range(100):
        try:
            if db.startswith(("postgres://", "postgresql://")):
                import psycopg2

                conn = psycopg2.connect(db)
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        return int(cur.fetchone()[0])
                finally:
                    conn.close()
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as lite:
                return int(lite.execute(sql).fetchone()[0])
        except Exception:  # the schema is not there yet
            time.sleep(0.05)
    raise AssertionError(f"cannot read {db}")


def pending(client: redis.Redis, stream: str, group: str = "badgetui") -> int:
    return int(client.xpending(stream, group)["pending"])


def storm_course(template: int, part: str) -> str:
    return f"course-v1:edX+Storm{template}+{part}"


def storm_config(templates: list[str]) -> str:
    """The storm shape of bench/processing.py: per template `(X or Y) and Z`, and a penalty
    (failing Z resets z and revokes a held badge; passing Z again re-awards)."""
    return config_text(*[
        template_config(ext, [
            requirement("x", rule("is_passing", "true"), rule("course.course_key",
                                                              storm_course(t, "X")), group="A"),
            requirement("y", rule("is_passing", "true"), rule("course.course_key",
                                                              storm_course(t, "Y")), group="A"),
            requirement("z", rule("is_passing", "true"), rule("course.course_key",
                                                              storm_course(t, "Z")), group="B"),
        ], [penalty(["z"], rule("is_passing", "false"),
                    rule("course.course_key", storm_course(t, "Z")))])
        for t, ext in enumerate(templates)
    ])


def storm_events(templates: int, events: int, learners: int, seed: int, *,
                 redelivered: int = 0) -> list[dict[str, Any]]:
    """Mixed passing (80 %) and failing events, about ten per learner, each learner mostly on
    one template: which badges exist, and which are revoked, depends on each learner's order.
    `redelivered` events come again later with the same id (the LMS redelivering)."""
    rnd = random.Random(seed)
    follows = [rnd.randrange(templates) for _ in range(learners)]
    out = []
    for n in range(events):
        learner = rnd.randrange(learners)
        t = follows[learner] if rnd.random() < 0.9 else rnd.randrange(templates)
        out.append(course_event(f"learner{learner}", storm_course(t, rnd.choice("XYZ")),
                                passing=rnd.random() < 0.8, event_id=f"storm-{n}", seconds=n,
                                uid=1000 + learner))
    for event in rnd.sample(out, redelivered):
        out.insert(rnd.randrange(out.index(event) + 1, len(out) + 1), dict(event))
    return out
