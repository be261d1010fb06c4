"""Throttling as Accredible documents it, client-side pacing, and the bounded retry budget.

The emulator enforces a per-IP budget (small numbers here); clients talk to it over the httpx
ASGI transport or real loopback HTTP. Assertions are on what the emulator counted or refused
and on what the client returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from badgetui.providers.accredible import AccredibleClient
from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import RetryableError
from badgetui.providers.pacing import (
    ACCREDIBLE_RATE_LIMIT,
    RateLimit,
    RateLimiter,
    forget_limiters,
    limiter_for,
)
from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from tests.conftest import CREDLY_ORG, FakeClock
from tests.test_providers import Sleeps

KEY = "accredible-pacing-key-0000-WXYZ"
AH = {"Authorization": f"Token token={KEY}"}
CREDLY_KEY = "credly-pacing-token-0000-LMNO"
SMALL = {"limit": 10, "window_s": 0.6, "bucket_s": 0.2}


def seed() -> dict[str, Any]:
    return {"credly": {"organizations": [{
                "id": CREDLY_ORG, "name": "Pacing Academy", "api_key": CREDLY_KEY,
                "badge_templates": []}]},
            "accredible": {"accounts": [{
                "name": "Pacing", "api_key": KEY, "designs": [],
                "groups": [{"id": 9001, "name": "g", "course_name": "G"}]}]}}


class Ticks:
    """A hand-moved monotonic clock for the emulator's buckets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    return Emulator(seed(), clock=clock, rng_seed=5)


@pytest.fixture
def loopback(emu: Emulator) -> Iterator[str]:
    forget_limiters()
    base, stop = start_in_thread(emu)
    try:
        yield base
    finally:
        stop()
        forget_limiters()


# -- emulator --------------------------------------------------------------------------------


async def test_emulator_enforces_the_per_ip_budget_with_429_and_no_retry_after(
    emu: Emulator,
) -> None:
    ticks = Ticks()
    emu.sandbox.accredible.throttle.clock = ticks
    emu.set_options({"accredible_rate_limit": {"limit": 5, "window_s": 3, "bucket_s": 1}})
    async with httpx.AsyncClient(transport=emu.transport(), base_url="http://sandbox") as c:
        codes = [(await c.get("/accredible/v1/issuer/details", headers=AH)).status_code
                 for _ in range(4)]
        codes.append((await c.post("/accredible/v1/issuer/groups/search", headers=AH,
                                   json={})).status_code)
        refused = await c.get("/accredible/v1/designs/1", headers=AH)
        credly = [(await c.get(f"/credly/v1/organizations/{CREDLY_ORG}",
                               auth=(CREDLY_KEY, ""))).status_code for _ in range(8)]
        ticks.now += 2.0  # still inside the window: the first bucket holds every request
        still = await c.get("/accredible/v1/issuer/details", headers=AH)
        ticks.now += 1.0  # the first bucket has left the window
        again = await c.get("/accredible/v1/issuer/details", headers=AH)
        emu.set_options({"rate_limit_retry_after": True})
        ticks.now += 0.1
        told = [await c.get("/accredible/v1/issuer/details", headers=AH) for _ in range(6)]
    assert codes == [200] * 5
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert refused.json() == {"errors": "Too Many Requests"}
    assert credly == [200] * 8  # Credly has no documented limit: not throttled
    assert still.status_code == 429 and again.status_code == 200
    # Refused requests count too: 2 in the window, so 3 more fit and 3 are refused.
    assert [r.status_code for r in told] == [200] * 3 + [429] * 3
    assert int(told[-1].headers["Retry-After"]) >= 1
    document = emu.state()["accredible"]["rate_limit"]
    assert document["refused"] == 5 and set(document["counted"]) == {"127.0.0.1"}


def test_rate_limit_options_are_checked(emu: Emulator) -> None:
    good = {"limit": 5, "window_s": 1, "bucket_s": 0.5, "count_rejected": False}
    options = emu.set_options({"accredible_rate_limit": good, "rate_limit_retry_after": 7})
    assert (options["accredible_rate_limit"], options["rate_limit_retry_after"]) == (good, 7)
    for bad in ({"limit": 0, "window_s": 1, "bucket_s": 1}, {"limit": 5},
                {"limit": 5, "window_s": 1, "bucket_s": 2}, [1]):
        with pytest.raises(ValueError):
            emu.set_options({"accredible_rate_limit": bad})
    with pytest.raises(ValueError):
        emu.set_options({"rate_limit_retry_after": "soon"})


# -- client pacing ---------------------------------------------------------------------------


async def test_paced_client_stays_under_the_budget_over_loopback(
    emu: Emulator, loopback: str
) -> None:
    emu.set_options({"accredible_rate_limit": SMALL})
    rate = RateLimit(limit=10, window_s=0.6, bucket_s=0.2)
    started = time.monotonic()
    async with AccredibleClient(f"{loopback}/accredible/v1/", KEY, rate_limit=rate,
                                retries=0) as paced:
        answers = await asyncio.gather(*(paced.issuer() for _ in range(30)))
        waited = paced.limiter.waited_s if paced.limiter else 0.0
    elapsed = time.monotonic() - started
    assert len(answers) == 30 and {a["name"] for a in answers} == {"Pacing"}
    assert emu.state()["accredible"]["rate_limit"]["refused"] == 0
    assert emu.counters()["accredible.issuer"]["requests"] == 30
    assert elapsed >= 1.2 and waited > 0  # 30 requests at 10 per 0.6 s (+1 bucket) take time

    async with AccredibleClient(f"{loopback}/accredible/v1/", KEY, rate_limit=None,
                                retries=0) as unpaced:
        results = await asyncio.gather(*(unpaced.issuer() for _ in range(30)),
                                       return_exceptions=True)
    refused = [r for r in results if isinstance(r, RetryableError)]
    assert refused and {r.status for r in refused} == {429}
    assert emu.state()["accredible"]["rate_limit"]["refused"] == len(refused)


def test_clients_of_one_host_share_one_limiter(emu: Emulator) -> None:
    transport = emu.transport()
    one = AccredibleClient("http://sandbox/accredible/v1/", KEY, transport=transport)
    two = AccredibleClient("http://sandbox/accredible/v1", "other-key", transport=transport)
    apart = AccredibleClient("http://sandbox/accredible/v1/", KEY, transport=emu.transport())
    assert one.limiter is not None and one.limiter is two.limiter
    assert one.limiter is not apart.limiter
    assert one.limiter.rate == ACCREDIBLE_RATE_LIMIT == RateLimit(2000, 300.0, 30.0)
    assert limiter_for("https://api.accredible.com/v1/", ACCREDIBLE_RATE_LIMIT) is limiter_for(
        "https://api.accredible.com/v2/", ACCREDIBLE_RATE_LIMIT)
    assert limiter_for("https://api.accredible.com/v1/", ACCREDIBLE_RATE_LIMIT) is not (
        limiter_for("https://eu.api.accredible.com/v1/", ACCREDIBLE_RATE_LIMIT))


def test_limiter_books_later_buckets_once_the_window_is_full() -> None:
    ticks = Ticks()
    limiter = RateLimiter(RateLimit(limit=4, window_s=2.0, bucket_s=1.0), clock=ticks)
    waits = [limiter._reserve() for _ in range(6)]
    # 4 fit now; the window looks back 3 buckets (2 s + 1), so the 5th waits 3 buckets.
    assert waits[:4] == [0.0] * 4
    assert waits[4] == waits[5] == pytest.approx(3.0)
    ticks.now += 10
    limiter.hold(2.5)
    assert limiter._reserve() == pytest.approx(2.5)


async def test_429_without_retry_after_backs_off_one_bucket(emu: Emulator) -> None:
    emu.set_faults({"accredible.groups.search": {"fail_next": [429], "retry_after": None}})
    sleeps = Sleeps()
    async with AccredibleClient("http://sandbox/accredible/v1/", KEY,
                                transport=emu.transport(), sleep=sleeps) as client:
        groups = await client.groups()
    assert [g.id for g in groups] == [9001]
    backoff = sleeps.waits[0]
    assert 30.0 <= backoff <= 36.0  # a whole 30 s bucket, not the generic 2-8 s
    # The host's limiter holds every request for that long (the injected sleep took no time,
    # so the retried request also waited out the hold in the limiter).
    assert [w for w in sleeps.waits[1:] if w >= 1] in ([], [pytest.approx(backoff, abs=0.5)])
    assert emu.counters()["accredible.groups.search"]["requests"] == 2


# -- bounded retry budget --------------------------------------------------------------------


async def test_connection_test_retries_then_says_what_failed_in_one_line(
    emu: Emulator,
) -> None:
    emu.set_faults({"credly.organization": {"fail_next": [503] * 10}})
    sleeps = Sleeps()
    async with CredlyClient("http://sandbox/credly/v1/", CREDLY_ORG, CREDLY_KEY,
                            transport=emu.transport(), sleep=sleeps, retries=3) as client:
        with pytest.raises(RetryableError) as caught:
            await client.organization()
    assert emu.counters()["credly.organization"]["requests"] == 4
    spent = round(sum(sleeps.waits))
    assert caught.value.message == (f"GET organizations/{CREDLY_ORG}: 503 Service unavailable "
                                    f"after 4 attempts in {spent} s")
    assert caught.value.status == 503 and "\n" not in str(caught.value)

    emu.set_faults({"credly.organization": {"fail_next": [502, 500]},
                    "credly.tokens.list": {"fail_next": [503]}})
    async with CredlyClient("http://sandbox/credly/v1/", CREDLY_ORG, CREDLY_KEY,
                            transport=emu.transport(), sleep=sleeps) as client:
        org = await client.organization()
        tokens = await client.authorization_tokens()
    assert org["name"] == "Pacing Academy" and isinstance(tokens, list)


async def test_webhook_event_fetch_retries_transient_failures(emu: Emulator) -> None:
    event = emu.credly_template(CREDLY_ORG, "create", {"name": "New badge", "state": "active"})
    emu.set_faults({"credly.events.get": {"fail_next": [502, "hang"]}})
    async with CredlyClient("http://sandbox/credly/v1/", CREDLY_ORG, CREDLY_KEY,
                            transport=emu.transport(), sleep=Sleeps(), timeout=0.3) as client:
        fetched = await client.event(event["data"]["id"] if "data" in event else event["id"])
    assert fetched["badge_template"]["name"] == "New badge"
    assert emu.counters()["credly.events.get"]["requests"] == 3


async def test_retry_budget_in_seconds_stops_before_the_attempts_run_out(
    emu: Emulator,
) -> None:
    emu.set_faults({"accredible.issuer": {"rate_hang": 1.0, "hang_s": 5}})
    async with AccredibleClient("http://sandbox/accredible/v1/", KEY, transport=emu.transport(),
                                timeout=0.3, retries=20, retry_seconds=1.5,
                                sleep=Sleeps()) as client:
        started = time.monotonic()
        with pytest.raises(RetryableError) as caught:
            await client.issuer()
    attempts = emu.counters()["accredible.issuer"]["requests"]
    assert 2 <= attempts < 21 and time.monotonic() - started < 3.0
    assert caught.value.message.startswith("GET issuer/details: no answer within 0.3 s after "
                                           f"{attempts} attempts in ")
