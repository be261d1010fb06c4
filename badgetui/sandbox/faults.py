"""Fault injection and request counters, applied around every provider endpoint.

A rule is looked up per field: the endpoint's own rule first, then the `*` rule, so
`{"*": {"latency_ms": 20}, "credly.issue": {"fail_next": [500]}}` delays the issue call too.
"""

from __future__ import annotations

import asyncio
import copy
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

CREDLY_ENDPOINTS = (
    "credly.organization", "credly.templates.list", "credly.templates.get", "credly.issue",
    "credly.badges.list", "credly.badges.get", "credly.revoke", "credly.events.get",
    "credly.tokens.list", "credly.tokens.rotate", "credly.oauth.token",
)
ACCREDIBLE_ENDPOINTS = (
    "accredible.issuer", "accredible.groups.list", "accredible.groups.search",
    "accredible.groups.get", "accredible.designs.get", "accredible.credentials.create",
    "accredible.credentials.get", "accredible.credentials.update",
    "accredible.credentials.delete", "accredible.credentials.search",
    "accredible.credentials.list",
)
ENDPOINTS = CREDLY_ENDPOINTS + ACCREDIBLE_ENDPOINTS
ANY = "*"
RULE_KEYS = frozenset({"latency_ms", "jitter_ms", "rate_429", "retry_after", "rate_5xx",
                       "statuses", "rate_hang", "hang_s", "fail_next", "phase"})
DEFAULT_STATUSES = (500, 502, 503)
DEFAULT_RETRY_AFTER = 1
DEFAULT_HANG_S = 30.0
HANG = "hang"
_MESSAGES = {429: "Too many requests", 500: "Internal server error", 502: "Bad gateway",
             503: "Service unavailable", 504: "Gateway timeout"}


@dataclass
class EndpointCounter:
    """What one endpoint saw: calls, injected failures, and the most calls at once."""

    requests: int = 0
    failed_injected: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


def _number(rule: dict[str, Any], key: str, *, upper: float | None = None) -> None:
    if key not in rule:
        return
    value = rule[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
            upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        raise ValueError(f"{key} must be a number, at least 0{bound}")


def validate_rules(rules: Any) -> dict[str, dict[str, Any]]:
    """A checked deep copy of a faults body; typos fail loudly instead of injecting nothing."""
    if not isinstance(rules, dict):
        raise ValueError("faults must be an object of endpoint name -> rule")
    checked: dict[str, dict[str, Any]] = {}
    for name, rule in rules.items():
        if name != ANY and name not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {name!r}; known: {ANY}, {', '.join(ENDPOINTS)}")
        if not isinstance(rule, dict):
            raise ValueError(f"rule for {name} must be an object")
        unknown = sorted(set(rule) - RULE_KEYS)
        if unknown:
            raise ValueError(f"unknown rule keys {unknown} for {name}")
        for key in ("latency_ms", "jitter_ms", "hang_s"):
            _number(rule, key)
        for key in ("rate_429", "rate_5xx", "rate_hang"):
            _number(rule, key, upper=1)
        if rule.get("retry_after") is not None:
            _number(rule, "retry_after")
        statuses = rule.get("statuses", list(DEFAULT_STATUSES))
        if not isinstance(statuses, list) or not statuses or any(
                not isinstance(s, int) or not 400 <= s <= 599 for s in statuses):
            raise ValueError("statuses must be a non-empty list of 4xx/5xx codes")
        script = rule.get("fail_next", [])
        if not isinstance(script, list) or any(
                s != HANG and (not isinstance(s, int) or not 400 <= s <= 599) for s in script):
            raise ValueError('fail_next must be a list of 4xx/5xx codes or "hang"')
        if rule.get("phase", "before") not in ("before", "after"):
            raise ValueError("phase must be before or after")
        checked[name] = copy.deepcopy(rule)
    return checked


def failure_response(endpoint: str, status: int, retry_after: float | None) -> Response:
    """The injected answer, in the provider's own error shape."""
    message = _MESSAGES.get(status, "Injected failure")
    body = ({"data": {"message": message}} if endpoint.startswith("credly")
            else {"errors": message})
    headers = {"X-Sandbox-Fault": "injected"}
    if status == 429 and retry_after is not None:
        headers["Retry-After"] = (str(int(retry_after)) if float(retry_after).is_integer()
                                  else str(retry_after))
    return JSONResponse(body, status_code=status, headers=headers)


class FaultInjector:
    """Holds the rules, the seeded generator, the counters and the requests held hanging."""

    def __init__(self, rng_seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, dict[str, Any]] = {}
        self._rng = random.Random(f"faults-{rng_seed}")
        self._counters = {name: EndpointCounter() for name in ENDPOINTS}
        self._hanging: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def set_rules(self, rules: Any) -> None:
        """Replace every rule (PUT semantics); `{}` turns faults off."""
        checked = validate_rules(rules)
        with self._lock:
            self._rules = checked

    def rules(self) -> dict[str, dict[str, Any]]:
        """The rules in force, with what is left of each `fail_next` script."""
        with self._lock:
            return copy.deepcopy(self._rules)

    def reset(self, rng_seed: int) -> None:
        """No rules, zero counters, the generator rewound; held requests are let go."""
        with self._lock:
            self._rules = {}
            self._rng = random.Random(f"faults-{rng_seed}")
            self._counters = {name: EndpointCounter() for name in ENDPOINTS}
        self.release_hangs()

    def counters(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: {k: v for k, v in asdict(c).items() if k != "in_flight"}
                    for name, c in self._counters.items()}

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {"total": sum(c.requests for c in self._counters.values()),
                    "failed_injected": sum(c.failed_injected for c in self._counters.values())}

    def release_hangs(self) -> None:
        """Answer every hanging request now (shutdown, reset); safe from any thread."""
        with self._lock:
            held = list(self._hanging)
        for loop, future in held:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop is closed already
                continue

    def _value(self, endpoint: str, key: str, default: Any) -> Any:
        for name in (endpoint, ANY):
            rule = self._rules.get(name)
            if rule is not None and key in rule:
                return rule[key]
        return default

    def _decide(self, endpoint: str) -> tuple[float, int | str | None, float | None, float]:
        """Latency, then the failure (a status, `hang` or None), its Retry-After and hang time."""
        with self._lock:
            latency = float(self._value(endpoint, "latency_ms", 0))
            jitter = float(self._value(endpoint, "jitter_ms", 0))
            if jitter:
                latency += self._rng.uniform(0, jitter)
            retry_after = self._value(endpoint, "retry_after", DEFAULT_RETRY_AFTER)
            hang_s = float(self._value(endpoint, "hang_s", DEFAULT_HANG_S))
            failure: int | str | None = None
            for name in (endpoint, ANY):
                script = (self._rules.get(name) or {}).get("fail_next")
                if script:
                    failure = script.pop(0)
                    break
            if failure is None:
                hang = float(self._value(endpoint, "rate_hang", 0))
                r429 = float(self._value(endpoint, "rate_429", 0))
                r5xx = float(self._value(endpoint, "rate_5xx", 0))
                if hang or r429 or r5xx:
                    draw = self._rng.random()
                    if draw < hang:
                        failure = HANG
                    elif draw < hang + r429:
                        failure = 429
                    elif draw < hang + r429 + r5xx:
                        statuses = self._value(endpoint, "statuses", list(DEFAULT_STATUSES))
                        failure = self._rng.choice(statuses)
            return latency / 1000.0, failure, retry_after, hang_s

    async def run(self, endpoint: str, call: Callable[[], Awaitable[Response]]) -> Response:
        """Count the request, apply latency and any failure around `call` (per `phase`)."""
        with self._lock:
            counter = self._counters[endpoint]
            counter.requests += 1
            counter.in_flight += 1
            counter.max_in_flight = max(counter.max_in_flight, counter.in_flight)
        try:
            latency, failure, retry_after, hang_s = self._decide(endpoint)
            if latency > 0:
                await asyncio.sleep(latency)
            if failure is None:
                return await call()
            with self._lock:
                counter.failed_injected += 1
                after = self._value(endpoint, "phase", "before") == "after"
            if after:
                await call()
            if failure == HANG:
                await self._hang(hang_s)
                return failure_response(endpoint, 504, None)
            return failure_response(endpoint, int(failure), retry_after)
        finally:
            with self._lock:
                counter.in_flight -= 1

    async def _hang(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            self._hanging.add(entry)
        try:
            await asyncio.wait([future], timeout=seconds)
        finally:
            with self._lock:
                self._hanging.discard(entry)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
