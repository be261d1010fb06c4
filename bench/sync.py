"""Sync benchmark: 10,000 Credly templates at 20 ms per request (target: <= 2 s), and 2,000
Accredible groups under Accredible's documented rate limit (target: no error).

One Credly organization with 10,000 active templates (200 pages of 50, the client's page size),
every template-list request delayed 20 ms, served over real loopback HTTP by the built-in emulator
(`start_in_thread`). Times `services.sync.sync(account)` (fetch + plan + apply into a SQLite
file), then a second sync where everything is unchanged. `--asgi` also times the same work
in process through the emulator's httpx ASGI transport.

Accredible: one account with 2,000 groups sharing 300 designs (real accounts reuse a few
designs across many groups; a sync asks for each distinct design once), every request delayed
20 ms, and the emulator enforcing 2,000 requests per 5 minutes per IP in 30 s buckets with no
Retry-After (option `accredible_rate_limit`). `provider add` + sync + a second sync must finish
without an error, paced by the client's shared limiter; the request count and the number of
429s are printed.

    python bench/sync.py [--templates 10000] [--latency-ms 20] [--asgi]
                         [--groups 2000] [--designs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.store.models import Template

ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"
KEY = "bench-credly-key"
ACCREDIBLE_KEY = "bench-accredible-key"
#: Accredible's documented budget (openapi.json, "Rate Limiting").
ACCREDIBLE_LIMIT = {"limit": 2000, "window_s": 300, "bucket_s": 30}


def seed(templates: int) -> dict[str, Any]:
    return {
        "credly": {"organizations": [{
            "id": ORG, "name": "Bench Academy", "api_key": KEY,
            "badge_templates": [
                {"id": f"00000000-0000-4000-8000-{n:012d}", "name": f"Badge {n}",
                 "state": "active", "description": f"Badge number {n}",
                 "image_url": f"https://images.example.org/{n}.png"}
                for n in range(1, templates + 1)
            ],
        }]},
        "accredible": {"accounts": []},
    }


async def measure(label: str, services: Services, emulator: Emulator) -> dict[str, Any]:
    account = await services.accounts.add_credly(ORG, KEY)
    pages: list[int] = []
    fetched: list[float] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "pages":
            pages.append(total)
            if done == total:
                fetched.append(time.perf_counter())

    before = emulator.counters().get("credly.templates.list", {}).get("requests", 0)
    started = time.perf_counter()
    [first] = await services.sync.sync(account.id, on_progress=progress)
    first_s = time.perf_counter() - started
    fetch_s = fetched[-1] - started if fetched else first_s
    requests = emulator.counters()["credly.templates.list"]["requests"] - before
    created = Template.select().where(Template.account == account.id).count()
    started = time.perf_counter()
    [second] = await services.sync.sync(account.id)
    second_s = time.perf_counter() - started
    if first.error or second.error:
        raise SystemExit(f"{label}: sync failed: {first.error or second.error}")
    return {
        "label": label, "first_s": first_s, "fetch_s": fetch_s, "second_s": second_s,
        "requests": requests,
        "pages": pages[-1] if pages else 0, "created": created,
        "planned_new": len(first.plan.create), "unchanged": second.plan.unchanged,
        "max_in_flight": emulator.counters()["credly.templates.list"]["max_in_flight"],
    }


def run(label: str, work: Path, args: argparse.Namespace,
        connect: Callable[[Emulator], tuple[str, Any, Callable[[], None]]]) -> dict[str, Any]:
    emulator = Emulator(seed(args.templates), rng_seed=0)
    emulator.set_faults({"credly.templates.list": {"latency_ms": args.latency_ms}})
    base, transport, stop = connect(emulator)
    try:
        services = Services.open(
            Settings(db=str(work / f"{label}.db"), credly_api_url=f"{base}/credly/v1/",
                     accredible_api_url=f"{base}/accredible/v1/"),
            transport=transport,
        )
        try:
            return asyncio.run(measure(label, services, emulator))
        finally:
            services.close()
    finally:
        stop()


def accredible_seed(groups: int, designs: int) -> dict[str, Any]:
    return {
        "credly": {"organizations": []},
        "accredible": {"accounts": [{
            "name": "Bench Accredible", "api_key": ACCREDIBLE_KEY,
            "designs": [{"id": 500 + d, "kind": "badge",
                         "rasterized_content_url": f"https://designs.example.org/{d}.png"}
                        for d in range(designs)],
            "groups": [{"id": 10_000 + n, "name": f"group-{n}", "course_name": f"Course {n}",
                        "course_description": f"Course number {n}",
                        # Every 7th group has only a certificate design; some have none.
                        "primary_design_id": None if n % 7 == 0 else 500 + n % designs,
                        "certificate_design_id": None if n % 50 == 0 else 500 + n % designs}
                       for n in range(groups)],
        }]},
    }


async def measure_accredible(services: Services, emulator: Emulator) -> dict[str, Any]:
    started = time.perf_counter()
    account = await services.accounts.add_accredible("Bench Accredible", ACCREDIBLE_KEY)
    [first] = await services.sync.sync(account.id)
    first_s = time.perf_counter() - started
    after_first = emulator.state()["requests"]["total"]
    pages_first = emulator.counters()["accredible.groups.search"]["requests"]
    started = time.perf_counter()
    [second] = await services.sync.sync(account.id)
    second_s = time.perf_counter() - started
    if first.error or second.error:
        raise SystemExit(f"accredible: sync failed: {first.error or second.error}")
    counters = emulator.counters()
    state = emulator.state()
    return {
        "first_s": first_s, "second_s": second_s, "requests_first": after_first,
        "requests": state["requests"]["total"],
        "pages": pages_first,
        "designs": counters["accredible.designs.get"]["requests"],
        "refused": state["accredible"]["rate_limit"]["refused"],
        "created": Template.select().where(Template.account == account.id).count(),
        "unchanged": second.plan.unchanged,
    }


def run_accredible(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    emulator = Emulator(accredible_seed(args.groups, args.designs), rng_seed=0,
                        options={"accredible_rate_limit": ACCREDIBLE_LIMIT})
    emulator.set_faults({"*": {"latency_ms": args.latency_ms}})
    base, stop = start_in_thread(emulator)
    try:
        services = Services.open(
            Settings(db=str(work / "accredible.db"), credly_api_url=f"{base}/credly/v1/",
                     accredible_api_url=f"{base}/accredible/v1/"))
        try:
            return asyncio.run(measure_accredible(services, emulator))
        finally:
            services.close()
    finally:
        stop()


def loopback(emulator: Emulator) -> tuple[str, Any, Callable[[], None]]:
    base, stop = start_in_thread(emulator)
    return base, None, stop


def in_process(emulator: Emulator) -> tuple[str, Any, Callable[[], None]]:
    return "http://sandbox", emulator.transport(), lambda: None


def line(r: dict[str, Any]) -> str:
    return (f"{r['label']}: sync {r['first_s']:.2f} s (pages fetched after {r['fetch_s']:.2f} s, "
            f"plan + apply {r['first_s'] - r['fetch_s']:.2f} s; {r['pages']} pages, "
            f"{r['requests']} list requests, max {r['max_in_flight']} in flight), "
            f"{r['created']} templates created; second sync (all unchanged: {r['unchanged']}) "
            f"{r['second_s']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--templates", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--asgi", action="store_true",
                        help="also time the in-process ASGI transport")
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--designs", type=int, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="badgetui-bench-sync-"))
    if args.asgi:
        print(line(run("asgi", work, args, in_process)))
    result = run("loopback", work, args, loopback)
    ok = result["first_s"] <= 2.0 and result["created"] == args.templates
    verdict = f"target <= 2 s: {'met' if ok else 'MISSED'}"
    print(f"{line(result)}  [{verdict}]")
    acc = run_accredible(work, args)
    ok = acc["created"] == args.groups and acc["refused"] == 0
    print(f"accredible loopback, {args.groups} groups / {args.designs} designs, rate limit "
          f"{ACCREDIBLE_LIMIT['limit']} per {ACCREDIBLE_LIMIT['window_s']} s enforced: "
          f"add + sync {acc['first_s']:.2f} s ({acc['requests_first']} requests: "
          f"{acc['pages']} group pages, {acc['designs']} designs), "
          f"{acc['created']} groups created; second sync (all unchanged: {acc['unchanged']}) "
          f"{acc['second_s']:.2f} s; {acc['requests']} requests in all, {acc['refused']} "
          f"refused with 429  [no error: {'met' if ok else 'MISSED'}]")


if __name__ == "__main__":
    main()
