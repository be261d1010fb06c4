"""The demo world, reproducible: same data, same ids, same times on every build.

`scripts/screenshots.py` and the live-pane snapshot tests draw from this. It is `badgetui demo`
with everything that varies pinned: a clock that moves only when told, the emulator in process
(no loopback port in any URL), its ids and the delivery backoff drawn from seeded generators,
scripted provider failures instead of random ones, and one delivery call at a time per account.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from badgetui.demo import prepare, simulated_event
from badgetui.sandbox import Emulator, demo_seed
from badgetui.services import Services
from badgetui.services.queries import list_badges
from badgetui.settings import Settings

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEY_CREATED = "2026-05-20T09:00:00Z"
LEARNERS = 60
BATCHES = 40
#: Seconds between two batches of learner events.
STEP = 97.0

#: Scripted, not random, so the same jobs fail every time: the first Credly issue is refused
#: (a failed badge to retry by hand), two more are rate limited or fail once and then succeed
#: after their backoff, and one Accredible create fails once.
WORLD_FAULTS: dict[str, Any] = {
    "credly.issue": {"fail_next": [400, 503, 429], "retry_after": 2},
    "accredible.credentials.create": {"fail_next": [502]},
}


class SteppingClock:
    """A clock that stands still until advanced (by the builder, or by delivery's waits)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(slots=True)
class DemoWorld:
    """What a tour needs: the services to show, the emulator (a stop changes its seed), the
    clock, and the directory files are written to."""

    services: Services
    settings: Settings
    emulator: Emulator
    clock: SteppingClock
    work: Path

    def close(self) -> None:
        self.services.close()


def extra_lines(rnd: random.Random, now: datetime, repeated: dict[str, Any]) -> list[str]:
    """JSON Lines the simulator never writes, so every intake outcome shows: a `repeated`
    event (duplicate), malformed lines of several kinds (rejected, each with its reason), an
    unconfigured type (ignored) and an event without a username (dropped)."""
    good = simulated_event(rnd, LEARNERS, now=now)
    status = good["data"].get("course_passing_status")
    wrong_key = {**good, "id": "wrong-key-0001", "data": {"grade": status}}
    wrong_type = json.loads(json.dumps(good))
    wrong_type["id"] = "bad-boolean-0001"
    for record in wrong_type["data"].values():
        record["is_passing"] = "maybe"
    dropped = json.loads(json.dumps(good))
    dropped["id"] = "no-username-0001"
    for record in dropped["data"].values():
        record["user"]["pii"]["username"] = ""
    ignored = {"id": "enrol-0001", "time": now.isoformat(), "data": {},
               "event_type": "org.openedx.learning.course.enrollment.created.v1"}
    return [json.dumps(repeated), '{"id": "broken-0001", "event_type": ', "[1, 2, 3]",
            json.dumps({"id": "no-type-0001", "data": {}}), json.dumps(wrong_key),
            json.dumps(wrong_type), json.dumps(ignored), json.dumps(dropped)]


@contextmanager
def _seeded_uuid4(seed: int) -> Iterator[None]:
    """Badge and outbox uuids come from `uuid.uuid4()` (the Why screen shows them): drawn from
    a seeded generator while the world is built. Single-threaded here, so patching is safe."""
    rnd = random.Random(seed)

    def seeded() -> uuid.UUID:
        return uuid.UUID(int=rnd.getrandbits(128), version=4)

    with patch.object(uuid, "uuid4", seeded):
        yield


def build_world(work: Path, *, batches: int = BATCHES, db: str = "demo.db") -> DemoWorld:
    """Accounts synced, templates configured, `batches` simulated batches ingested and
    delivered, then a few odd lines. `db` is relative to the current directory on purpose:
    the status line shows it, so run from `work` (chdir) for pictures that never change."""
    clock = SteppingClock()
    seed = demo_seed()
    # The Credly key is 166 days old: it expires in two weeks, so the warnings show.
    seed["credly"]["organizations"][0]["key_created_at"] = KEY_CREATED
    emulator = Emulator(seed, clock=clock, rng_seed=7)
    emulator.set_faults(WORLD_FAULTS)
    services, settings, _ = prepare(work, emulator=emulator, in_process=True, clock=clock,
                                    db=db, delivery_concurrency=1)
    services.delivery.rng = random.Random(7)

    async def waited(seconds: float) -> None:
        """Delivery's backoff waits pass on the world clock, not the wall clock."""
        clock.advance(seconds)
        await asyncio.sleep(0)

    services.delivery.sleep = waited
    rnd = random.Random(2026)
    first: dict[str, Any] = {}
    with _seeded_uuid4(2026):
        for _ in range(batches):
            clock.advance(STEP)
            batch = [simulated_event(rnd, LEARNERS, now=clock())
                     for _ in range(rnd.randint(1, 4))]
            first = first or batch[0]
            services.intake.ingest_objects(batch, "demo")
            asyncio.run(services.delivery.run())
        clock.advance(STEP)
        services.intake.ingest_lines(extra_lines(rnd, clock(), first), "odd.jsonl")
        clock.advance(STEP)
        # An operator's revoke too (the other revoked badge comes from a penalty).
        [issued] = list_badges(status="awarded", provider_state="accepted", limit=1)
        services.badges.revoke(issued.id, "issued in error (duplicate learner account)")
        asyncio.run(services.delivery.run())
    return DemoWorld(services, settings, emulator, clock, work)


def ingest_file(path: Path, count: int = 12, seed: int = 11) -> Path:
    """A small JSON Lines file for the ingest dialog: `count` events and one broken line."""
    rnd = random.Random(seed)
    lines = [json.dumps(simulated_event(rnd, LEARNERS, now=START)) for _ in range(count)]
    lines.insert(count // 2, "{broken")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
