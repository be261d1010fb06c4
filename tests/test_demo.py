"""`badgetui demo`: emulator, accounts, sync, configuration and a stream of learner events."""

from __future__ import annotations

import asyncio
import random

from badgetui.demo import Feeder, prepare, simulated_event
from badgetui.services.queries import list_badges
from badgetui.tui.app import make_app


async def test_demo_world_is_ready_and_events_flow(tmp_path):
    services, settings, stop = await asyncio.to_thread(prepare, tmp_path)
    try:
        accounts = services.templates.accounts()
        assert {a.provider for a in accounts} == {"credly", "accredible"}
        active = [t for t in services.templates.list() if t.active]
        assert len(active) == 7 and all(t.requirements for t in active)
        feeder = Feeder(services, learners=10)
        feeder.rnd = random.Random(1)
        for _ in range(15):  # what the feeder thread does every tick, run inline here
            services.intake.ingest_objects(
                [simulated_event(feeder.rnd, 10) for _ in range(4)], "demo")
        report = await services.delivery.run()
        assert report.counts["retried"] > 0  # the demo's providers rate-limit and fail a bit
        assert report.counts["failed"] == 1  # one issue refused outright, to retry by hand
        badges = list_badges()
        awarded = [b for b in badges if b.status == "awarded"]
        unsent = [b for b in awarded if not b.external_id]
        assert awarded and len(unsent) == 1 and "failed" in unsent[0].last_error
        app = make_app(settings, services=services)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("b")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.query_one("#badges-pane").query_one("DataTable").row_count == len(badges)
    finally:
        stop()
        services.close()
