"""Bulk award benchmark: 5,000 CSV rows awarded and delivered end to end at the emulator.

The emulator is served over real loopback HTTP with `credly.issue` delayed 50 ms; the file
names 5,000 new learners of one Credly template. Prints the award step (validation and writes)
and the delivery step separately, the end-to-end rows/s, and the bound the delivery
concurrency allows (concurrency / latency), measured in the same run.

    python bench/bulk_award.py [--rows 5000] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.services.awards import read_award_file
from badgetui.settings import Settings
from badgetui.store.models import Template
from bench.delivery import KEY, ORG, TEMPLATE, config, seed


async def prepare(services: Services) -> None:
    account = await services.accounts.add_credly(ORG, KEY)
    [synced] = await services.sync.sync(account.id)
    if synced.error:
        raise SystemExit(f"sync failed: {synced.error}")
    services.config.import_text(config())
    template = Template.get(Template.external_id == TEMPLATE)
    if not template.is_active:
        services.templates.set_active(template.id, True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    text = "username,email,name,template,evidence,expiry\n" + "".join(
        f"bulk{n},bulk{n}@example.org,Bulk Learner {n},{TEMPLATE},https://ex.org/{n},"
        "2030-12-31\n" for n in range(args.rows))
    work = Path(tempfile.mkdtemp(prefix="badgetui-bench-bulk-"))
    emulator = Emulator(seed(), rng_seed=0)
    base, stop = start_in_thread(emulator)
    try:
        settings = Settings(db=str(work / "bench.db"), credly_api_url=f"{base}/credly/v1/",
                            accredible_api_url=f"{base}/accredible/v1/")
        services = Services.open(settings)
        try:
            asyncio.run(prepare(services))
            emulator.set_faults({"credly.issue": {"latency_ms": args.latency_ms}})
            started = time.perf_counter()
            report = services.awards.award_file(read_award_file(text), "bench", source="bench")
            awarded_at = time.perf_counter()
            delivered = asyncio.run(services.delivery.run())
            done = time.perf_counter()
        finally:
            services.close()
    finally:
        stop()
    held = emulator.state()["credly"]["badges"]
    award_s, deliver_s, total = awarded_at - started, done - awarded_at, done - started
    bound = settings.delivery_concurrency / (args.latency_ms / 1000)
    print(f"award: {report.counts['awarded']:,} rows in {award_s:.2f} s "
          f"({report.counts['awarded'] / award_s:,.0f} rows/s)")
    print(f"deliver: {delivered.counts['issued']:,} issued in {deliver_s:.2f} s "
          f"({delivered.counts['issued'] / deliver_s:,.0f} badges/s; bound "
          f"{bound:,.0f}/s at {settings.delivery_concurrency} in flight, "
          f"{delivered.counts['issued'] / deliver_s / bound:.0%} of it)")
    print(f"end to end: {args.rows:,} rows in {total:.2f} s ({args.rows / total:,.0f} rows/s); "
          f"emulator holds {len(held):,} badges "
          f"[{'exactly one per row' if len(held) == args.rows else 'MISMATCH'}]")


if __name__ == "__main__":
    main()
