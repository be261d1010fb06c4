"""`badgetui demo`: the console on a fresh database, fed by the built-in emulator.

The emulator serves a seeded Credly organization and Accredible account on loopback; the demo
adds both accounts, syncs them, configures a handful of templates, and keeps a stream of
simulated learner events flowing through the same intake and delivery as production.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.sandbox import Emulator, demo_seed
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.services.common import Clock, utc_now
from badgetui.settings import Settings

COURSES = ("Python", "Pandas", "ML", "Web", "Cloud")


def course_key(name: str) -> str:
    return f"course-v1:DemoX+{name}+2026"


def _rule(path: str, value: str, op: str = "eq") -> dict[str, str]:
    return {"path": path, "op": op, "value": value}


def demo_config(
    credly_ids: list[str], accredible_ids: list[str], accredible_account: str
) -> dict[str, Any]:
    """Each Credly template asks for its course (or its CCX) and forgives nothing: failing the
    course again is a penalty. One needs two courses (groups A and B)."""
    templates = []
    for index, external_id in enumerate(credly_ids[: len(COURSES)]):
        name = COURSES[index]
        requirements = [
            {"id": "course", "event_type": COURSE_PASSING, "group": "A",
             "description": f"Pass {name}",
             "rules": [_rule("is_passing", "true"), _rule("course.course_key", course_key(name))]},
            {"id": "ccx", "event_type": CCX_COURSE_PASSING, "group": "A",
             "description": f"Pass a CCX of {name}",
             "rules": [_rule("is_passing", "true"),
                       _rule("course.master_course_key", course_key(name))]},
        ]
        if index == 2:
            requirements.append(
                {"id": "python", "event_type": COURSE_PASSING, "group": "B",
                 "description": "Pass Python too",
                 "rules": [_rule("is_passing", "true"),
                           _rule("course.course_key", course_key("Python"))]})
        templates.append({
            "provider": "credly", "external_id": external_id, "active": True,
            "requirements": requirements,
            "penalties": [{"event_type": COURSE_PASSING, "requirements": ["course"],
                           "description": f"Failing {name} again",
                           "rules": [_rule("is_passing", "false"),
                                     _rule("course.course_key", course_key(name))]}],
        })
    if len(credly_ids) > len(COURSES):
        # The documentation's example 4: any course except one (an `ne` rule).
        templates.append({
            "provider": "credly", "external_id": credly_ids[len(COURSES)], "active": True,
            "requirements": [{
                "id": "not-pandas", "event_type": COURSE_PASSING, "group": "A",
                "description": "Pass any course except Pandas",
                "rules": [_rule("is_passing", "true"),
                          _rule("course.course_key", course_key("Pandas"), "ne")]}],
            "penalties": [],
        })
    for external_id in accredible_ids[:1]:
        templates.append({
            "provider": "accredible", "external_id": external_id, "active": True,
            "account": accredible_account,
            "requirements": [{"id": "any", "event_type": COURSE_PASSING, "group": "A",
                              "description": "Pass any course",
                              "rules": [_rule("is_passing", "true")]}],
            "penalties": [],
        })
    return {"version": 1, "templates": templates}


def simulated_event(
    rnd: random.Random, learners: int, now: datetime | None = None
) -> dict[str, Any]:
    """One learner event; the same generator state gives the same event (ids included)."""
    learner = rnd.randrange(learners)
    name = rnd.choice(COURSES)
    user = {"id": 1000 + learner, "is_active": True,
            "pii": {"username": f"learner{learner:03d}",
                    "email": f"learner{learner:03d}@example.org",
                    "name": f"Learner {learner:03d}"}}
    passing = rnd.random() < 0.8
    moment = (now or datetime.now(UTC)).isoformat()
    event_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
    if rnd.random() < 0.2:
        return {"id": event_id, "event_type": CCX_COURSE_PASSING, "time": moment,
                "data": {"course_passing_status": {
                    "is_passing": passing, "user": user,
                    "course": {"ccx_course_key": f"ccx-v1:DemoX+{name}+2026+ccx@1",
                               "master_course_key": course_key(name)}}}}
    return {"id": event_id, "event_type": COURSE_PASSING, "time": moment,
            "data": {"course_passing_status": {
                "is_passing": passing, "user": user,
                "course": {"course_key": course_key(name)}}}}


class Feeder(threading.Thread):
    """Learner events every few hundred milliseconds, processed and delivered like production."""

    def __init__(self, services: Services, *, learners: int = 60, interval: float = 0.4) -> None:
        super().__init__(daemon=True, name="demo-feeder")
        self.services = services
        self.learners = learners
        self.interval = interval
        self.stop = threading.Event()
        self.rnd = random.Random(2026)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            batch = [simulated_event(self.rnd, self.learners)
                     for _ in range(self.rnd.randint(1, 4))]
            self.services.intake.ingest_objects(batch, "demo")
            # Until idle, but quitting the demo ends it at once (the jobs stay queued).
            asyncio.run(self.services.delivery.run(until_idle=True, stop=self.stop))


#: Enough trouble at the providers to watch retries happen: rate limits and server errors on
#: issuing, and one issue refused outright, so the Badges pane has a failed delivery to retry.
DEMO_FAULTS: dict[str, Any] = {
    "*": {"latency_ms": 30},
    "credly.issue": {"latency_ms": 60, "rate_429": 0.08, "retry_after": 1, "rate_5xx": 0.07,
                     "statuses": [500, 503], "fail_next": [400]},
    "accredible.credentials.create": {"latency_ms": 60, "rate_5xx": 0.1, "statuses": [502]},
}


def prepare(
    work: Path,
    *,
    emulator: Emulator | None = None,
    in_process: bool = False,
    clock: Clock | None = None,
    db: str | None = None,
    **overrides: Any,
) -> tuple[Services, Settings, Callable[[], None]]:
    """Emulator up, accounts added and synced, templates configured; returns what to run.

    The keywords exist for reproducible pictures (scripts/screenshots.py, snapshot tests): a
    given `emulator` (its seed, clock and faults), reached `in_process` through an ASGI
    transport instead of a loopback port, a fixed `clock`, a `db` path (relative keeps the
    status line stable) and further Settings `overrides`. Without them: the `badgetui demo`.
    """
    if emulator is None:
        emulator = Emulator(demo_seed(), rng_seed=7)
        emulator.set_faults(DEMO_FAULTS)
    transport = None
    if in_process:
        base, stop_emulator = "http://sandbox", _nothing
        transport = emulator.transport()
    else:
        base, stop_emulator = start_in_thread(emulator)
    values: dict[str, Any] = {
        "db": db or str(work / "demo.db"), "credly_api_url": f"{base}/credly/v1/",
        "accredible_api_url": f"{base}/accredible/v1/", "provider_timeout": 5,
        "delivery_stall": 10, **overrides}
    settings = Settings(**values)
    services = Services.open(settings, clock=clock or utc_now, transport=transport)
    seed = demo_seed()
    org = seed["credly"]["organizations"][0]
    account = seed["accredible"]["accounts"][0]

    async def setup() -> None:
        await services.accounts.add_credly(org["id"], org["api_key"])
        await services.accounts.add_accredible(account["name"], account["api_key"])
        await services.sync.sync()

    asyncio.run(setup())
    credly_ids = [t["id"] for t in org["badge_templates"] if t.get("state") == "active"]
    accredible_ids = [str(g["id"]) for g in account["groups"]]
    config = demo_config(credly_ids, accredible_ids, account["name"])
    services.config.import_text(json.dumps(config))
    return services, settings, stop_emulator


def _nothing() -> None:
    """Stopping an in-process emulator: there is no server thread."""


def run_demo() -> int:
    from badgetui.tui.app import make_app

    work = Path(tempfile.mkdtemp(prefix="badgetui-demo-"))
    services, settings, stop_emulator = prepare(work)
    feeder = Feeder(services)
    feeder.start()
    app = make_app(settings, services=services)
    app.live_refresh = 2.0
    try:
        app.run()
    finally:
        feeder.stop.set()
        feeder.join(5)
        stop_emulator()
    return 0
