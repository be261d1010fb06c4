"""Delivery benchmark: 2,000 Credly issues at 50 ms per call (target: >= 200 badges/s).

One Credly organization with one template, a configuration with one rule-less requirement on
the course-passing event (so every passing event awards), 2,000 course-passing events of 2,000
distinct learners ingested, then `services.delivery.run()` timed against the built-in emulator
served over real loopback HTTP (`start_in_thread`) with `credly.issue` delayed 50 ms. Prints
badges/s, the configured concurrency, the most issue calls the emulator saw in flight at once,
and whether the emulator holds exactly one badge per learner.

    python bench/delivery.py [--learners 2000] [--latency-ms 50] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.domain.events import COURSE_PASSING
from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.store.models import Badge, DeliveryJob, Template

ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"
KEY = "bench-credly-key"
TEMPLATE = "00000000-0000-4000-8000-000000000001"
COURSE = "course-v1:Bench+Deliver+2026"


def seed() -> dict[str, Any]:
    return {
        "credly": {"organizations": [{
            "id": ORG, "name": "Bench Academy", "api_key": KEY,
            "badge_templates": [{"id": TEMPLATE, "name": "Bench badge", "state": "active",
                                 "description": "", "image_url": ""}],
        }]},
        "accredible": {"accounts": []},
    }


def config() -> str:
    return json.dumps({"version": 1, "templates": [{
        "provider": "credly", "external_id": TEMPLATE, "active": True, "penalties": [],
        "requirements": [{"id": "passed", "event_type": COURSE_PASSING, "rules": []}],
    }]})


def events(learners: int) -> list[str]:
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    return [
        json.dumps({
            "id": f"bench-evt-{n}", "event_type": COURSE_PASSING,
            "time": (start + timedelta(seconds=n)).isoformat(),
            "data": {"course_passing_status": {
                "is_passing": True,
                "course": {"course_key": COURSE, "display_name": "", "start": None,
                           "end": None},
                "user": {"id": 100_000 + n, "is_active": True,
                         "pii": {"username": f"learner{n}", "email": f"learner{n}@example.org",
                                 "name": f"Learner Number{n}"}}}},
        })
        for n in range(learners)
    ]


async def prepare(services: Services, learners: int) -> int:
    account = await services.accounts.add_credly(ORG, KEY)
    [synced] = await services.sync.sync(account.id)
    if synced.error:
        raise SystemExit(f"sync failed: {synced.error}")
    services.config.import_text(config())
    template = Template.get((Template.account == account.id) & (Template.external_id == TEMPLATE))
    if not template.is_active:
        services.templates.set_active(template.id, True)
    report = services.intake.ingest_lines(events(learners), "bench")
    return report.as_dict().get("awarded", 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="delivery_concurrency (default: the setting's default)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="badgetui-bench-delivery-"))
    emulator = Emulator(seed(), rng_seed=0)
    base, stop = start_in_thread(emulator)
    try:
        extra: dict[str, Any] = {}
        if args.concurrency is not None:
            extra["delivery_concurrency"] = args.concurrency
        settings = Settings(db=str(work / "bench.db"), credly_api_url=f"{base}/credly/v1/",
                            accredible_api_url=f"{base}/accredible/v1/", **extra)
        services = Services.open(settings)
        try:
            awarded = asyncio.run(prepare(services, args.learners))
            queued = DeliveryJob.select().where(DeliveryJob.state == "queued").count()
            emulator.set_faults({"credly.issue": {"latency_ms": args.latency_ms}})
            started = time.perf_counter()
            report = asyncio.run(services.delivery.run())
            elapsed = time.perf_counter() - started
            delivered = Badge.select().where(Badge.external_id.is_null(False)).count()
        finally:
            services.close()
    finally:
        stop()

    counters = emulator.counters().get("credly.issue", {})
    held = emulator.state()["credly"]["badges"]
    earners = {b["issuer_earner_id"] for b in held}
    rate = report.counts["issued"] / elapsed if elapsed else 0.0
    in_flight = counters.get("max_in_flight", 0)
    concurrency = settings.delivery_concurrency
    exact = len(held) == args.learners and len(earners) == args.learners
    print(f"ingested {args.learners} events: {awarded} badges awarded, {queued} jobs queued")
    print(f"delivery report: {report.as_dict()}")
    print(f"emulator: {len(held)} badges for {len(earners)} distinct earners, "
          f"{counters.get('requests', 0)} issue requests "
          f"[exactly {args.learners}: {'yes' if exact else 'NO'}]; "
          f"local badges with a Credly id: {delivered}")
    ok = rate >= 200 and in_flight <= concurrency and exact
    print(f"delivery: {elapsed:.2f} s, {rate:,.0f} badges/s, concurrency {concurrency}, "
          f"emulator max_in_flight (credly.issue) {in_flight}  "
          f"[target >= 200 badges/s, max_in_flight <= {concurrency}: "
          f"{'met' if ok else 'MISSED'}]")


if __name__ == "__main__":
    main()
