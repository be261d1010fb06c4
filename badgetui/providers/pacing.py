"""Client-side pacing: stay under a provider's documented request budget instead of hitting 429.

Why: Accredible allows 2,000 requests per 5 minutes per source IP, counted in 30 s periods, and
sends no `Retry-After` (providers.md §2.9). A big sync (thousands of groups and designs) would
otherwise burst past the budget and fail half-way. Every client of one host shares one limiter
(the budget is per IP, not per client object), kept in a module-level registry.

The limiter counts its own sends in `bucket_s` buckets and looks back over `window_s` plus one
bucket: the server's buckets are not aligned with ours, and any server window of `window_s`
lies inside our `window_s + bucket_s`, so staying under `limit` there keeps us under the
server's limit whatever its alignment (at the cost of at most one bucket of throughput).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` requests per `window_s` seconds, counted in `bucket_s` periods."""

    limit: int
    window_s: float
    bucket_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0 or self.bucket_s <= 0:
            raise ValueError("a rate limit needs limit >= 1 and positive window_s, bucket_s")
        if self.bucket_s > self.window_s:
            raise ValueError("bucket_s must not exceed window_s")


#: Accredible's documented budget (openapi.json "Rate Limiting": 2000 per 5 min per IP, 30 s).
ACCREDIBLE_RATE_LIMIT = RateLimit(limit=2000, window_s=300.0, bucket_s=30.0)


class RateLimiter:
    """Reserves a send slot per request; thread-safe, so clients on several loops can share it.

    `acquire()` books the request into the first bucket with room (now, or a later one) and
    sleeps until that bucket starts; `hold(seconds)` makes every later acquire wait at least
    that long (used after a 429: the server says the budget is spent, whatever we counted;
    another process behind the same IP may be spending it too).
    """

    def __init__(self, rate: RateLimit, *, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._lock = threading.Lock()
        self._span = math.ceil(rate.window_s / rate.bucket_s) + 1  # buckets looked back on
        self._counts: dict[int, int] = {}
        self._held_until = -math.inf
        self.sent = 0
        self.waited_s = 0.0

    def __repr__(self) -> str:
        return f"RateLimiter({self.rate!r}, sent={self.sent})"

    def _bucket(self, moment: float) -> int:
        return math.floor(moment / self.rate.bucket_s)

    def _used(self, bucket: int) -> int:
        return sum(self._counts.get(b, 0) for b in range(bucket - self._span + 1, bucket + 1))

    def _reserve(self) -> float:
        """Book one request; the seconds to wait before sending it."""
        with self._lock:
            now = self.clock()
            start = max(now, self._held_until)
            bucket = self._bucket(start)
            for old in [b for b in self._counts if b <= bucket - self._span]:
                del self._counts[old]
            # A full window ahead always has room: the loop ends within `span` steps.
            while self._used(bucket) >= self.rate.limit:
                bucket += 1
            self._counts[bucket] = self._counts.get(bucket, 0) + 1
            self.sent += 1
            send_at = max(start, bucket * self.rate.bucket_s)
            wait = max(0.0, send_at - now)
            self.waited_s += wait
            return wait

    async def acquire(self, sleep: Sleep = asyncio.sleep) -> float:
        """Wait until one more request fits the budget; returns the seconds waited."""
        wait = self._reserve()
        if wait > 0:
            await sleep(wait)
        return wait

    def backoff_s(self) -> float:
        """The wait after a 429 without Retry-After: one whole bucket. The server's bucket
        boundaries are unknown to us; after a whole bucket one of them has surely passed, and
        its oldest bucket has left the window (about 30 s for Accredible)."""
        return self.rate.bucket_s

    def hold(self, seconds: float) -> None:
        """No request leaves before `seconds` from now (every client of the host waits)."""
        with self._lock:
            self._held_until = max(self._held_until, self.clock() + max(0.0, seconds))


_lock = threading.Lock()
_by_host: dict[tuple[str, RateLimit], RateLimiter] = {}
_by_transport: weakref.WeakKeyDictionary[
    httpx.AsyncBaseTransport, dict[tuple[str, RateLimit], RateLimiter]
] = weakref.WeakKeyDictionary()


def host_key(base_url: str) -> str:
    """`host:port` of a base URL (the unit a per-IP budget applies to)."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


def limiter_for(
    base_url: str,
    rate: RateLimit,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RateLimiter:
    """The shared limiter of `base_url`'s host for `rate`.

    Over the network, every client of one host shares it. An injected transport (an in-process
    emulator) is its own little network: its limiters live and die with the transport, so two
    tests on the same fake host never spend each other's budget.
    """
    key = (host_key(base_url), rate)
    with _lock:
        registry = _by_host if transport is None else _by_transport.setdefault(transport, {})
        limiter = registry.get(key)
        if limiter is None:
            limiter = registry[key] = RateLimiter(rate)
        return limiter


def forget_limiters() -> None:
    """Drop every shared limiter (a fresh process's state; for tests and benchmarks)."""
    with _lock:
        _by_host.clear()
        _by_transport.clear()
