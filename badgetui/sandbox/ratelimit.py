"""Per-IP request budget for the emulated Accredible (option `accredible_rate_limit`).

Accredible documents "up to 2000 requests every 5 minutes from a single IP address ... counted
in 30 second periods" and a 429 beyond, with no `Retry-After` (openapi.json, "Rate Limiting").
The emulator counts each IP's requests in `bucket_s` buckets; a request is refused when the
buckets of the last `window_s` (the current, partly elapsed one included) already hold `limit`.
Refused requests count too unless `count_rejected` is false (a client that keeps hammering
stays locked out, the harsher reading). Time is monotonic and injectable (`clock`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

LIMIT_KEYS = frozenset({"limit", "window_s", "bucket_s", "count_rejected"})


def check_rate_limit(value: Any) -> None:
    """ValueError unless `value` is None or {"limit", "window_s", "bucket_s"[, ...]}."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise ValueError("accredible_rate_limit must be null or an object")
    unknown = sorted(set(value) - LIMIT_KEYS)
    if unknown:
        raise ValueError(f"unknown accredible_rate_limit keys {unknown}")
    limit = value.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("accredible_rate_limit.limit must be an integer >= 1")
    for key in ("window_s", "bucket_s"):
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
            raise ValueError(f"accredible_rate_limit.{key} must be a positive number")
    if value["bucket_s"] > value["window_s"]:
        raise ValueError("accredible_rate_limit.bucket_s must not exceed window_s")
    if not isinstance(value.get("count_rejected", True), bool):
        raise ValueError("accredible_rate_limit.count_rejected must be true or false")


def check_retry_after(value: Any) -> None:
    """`rate_limit_retry_after`: false (none, as documented), true (the real wait), seconds."""
    if isinstance(value, bool):
        return
    if not isinstance(value, int | float) or value < 0:
        raise ValueError("rate_limit_retry_after must be true, false or seconds >= 0")


class IpThrottle:
    """Request counts per client IP and bucket; `admit` decides one request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._counts: dict[str, dict[int, int]] = {}
        self.refused = 0

    def admit(self, ip: str, config: dict[str, Any]) -> float | None:
        """None when the request fits; else the seconds until one would fit again."""
        bucket_s = float(config["bucket_s"])
        span = max(1, math.ceil(float(config["window_s"]) / bucket_s))
        now = self.clock()
        bucket = math.floor(now / bucket_s)
        counts = self._counts.setdefault(ip, {})
        for old in [b for b in counts if b <= bucket - span]:
            del counts[old]
        used = sum(counts.values())
        allowed = used < int(config["limit"])
        if allowed or config.get("count_rejected", True):
            counts[bucket] = counts.get(bucket, 0) + 1
        if allowed:
            return None
        self.refused += 1
        return self._wait(counts, bucket, span, int(config["limit"]), bucket_s, now)

    @staticmethod
    def _wait(counts: dict[int, int], bucket: int, span: int, limit: int, bucket_s: float,
              now: float) -> float:
        """Seconds until enough old buckets have left the window for one more request."""
        used = sum(counts.values())
        for step in range(1, span + 1):
            used -= counts.get(bucket - span + step, 0)
            if used < limit:
                return (bucket + step) * bucket_s - now
        return span * bucket_s

    def document(self) -> dict[str, Any]:
        """Requests counted per IP in the current window, and the refusals so far."""
        return {"refused": self.refused,
                "counted": {ip: sum(c.values()) for ip, c in self._counts.items()}}
