"""Shared plumbing of the provider clients: one place for timeouts, errors, retries and paging.

Why it exists: both providers need the same guarantees (providers.md §3): a deadline on every
call (also under an in-process ASGI transport, which ignores httpx timeouts), every failure
classified, reads retried with backoff that honours `Retry-After`, concurrency bounded per
client (httpx pool limits do not apply to an injected transport), and keys kept out of every
message. Retries are bounded twice (attempts and seconds, waits included) so a sync, a
connection test or a webhook fetch ends with one line saying what failed; a host with a
documented budget is paced by its shared `pacing.RateLimiter` before every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx

from badgetui.domain.secrets import mask
from badgetui.providers.errors import (
    AuthError,
    DuplicateError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from badgetui.providers.pacing import RateLimiter

log = logging.getLogger("badgetui.providers")

T = TypeVar("T")
OnPage = Callable[[int, int], None]
Sleep = Callable[[float], Awaitable[None]]

#: A Retry-After longer than this is not waited out inside a read: the error goes to the caller.
MAX_HONOURED_WAIT = 60.0
#: The default retry budget of one read: attempts (retries + 1) and seconds spent, waits
#: included. Enough for a 429 backoff of a whole Accredible bucket (30 s) and a second try.
DEFAULT_RETRIES = 3
DEFAULT_RETRY_SECONDS = 90.0
#: Pages followed by link at most (a provider bug repeating a link must not loop forever).
MAX_FOLLOWED_PAGES = 10_000
MESSAGE_LIMIT = 200
USER_AGENT = "badgetui (+https://github.com/openedx)"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret by its mask (callers pass the key and its encoded header forms)."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, mask(secret))
    return text


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Collapse whitespace; cut long texts so a message always fits one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _join_errors(errors: Any) -> str:
    """`{"field": ["msg", ...]}` or `[{"property", "message"}]` or `["msg"]` as one phrase."""
    parts: list[str] = []
    if isinstance(errors, dict):
        for field, value in errors.items():
            msgs = value if isinstance(value, list) else [value]
            text = ", ".join(str(m) for m in msgs if m not in (None, ""))
            if text:
                parts.append(text if field == "base" else f"{field} {text}")
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                text = str(item.get("message") or item.get("detail") or "")
                field = item.get("property") or item.get("field")
                if text:
                    parts.append(f"{field} {text}" if field else text)
            elif item not in (None, ""):
                parts.append(str(item))
    return "; ".join(parts)


def message_from_body(body: Any) -> str:
    """The provider's message from any documented error shape (providers.md §1.12, §2.8)."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    data = body.get("data")
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    errors = body.get("errors")
    if isinstance(errors, str) and errors:
        return errors
    joined = _join_errors(errors)
    if joined:
        return joined
    if isinstance(data, str) and data:
        return data
    error = body.get("error")
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    return ""


def extract_message(response: httpx.Response) -> str:
    """One line: the JSON message when there is one, else the raw text, else the reason."""
    text = response.text
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    message = one_line(message_from_body(body)) if body is not None else ""
    if not message and not isinstance(body, dict | list):
        message = one_line(text)
    return message or response.reason_phrase or f"HTTP {response.status_code}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def build_client(
    base_url: str,
    headers: dict[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None,
    timeout: float,
    max_connections: int,
) -> httpx.AsyncClient:
    """An AsyncClient with timeouts and pool limits; `transport` lets tests run in-process."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Accept": "application/json", "User-Agent": USER_AGENT, **headers},
        transport=transport,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
        follow_redirects=False,
    )


def as_dict(value: Any) -> dict[str, Any]:
    """A nested object of an answer, or {} when the provider left it out or sent another type."""
    return value if isinstance(value, dict) else {}


def with_slash(url: str) -> str:
    """Base URLs end with "/" so relative paths join under their prefix."""
    return url if url.endswith("/") else url + "/"


class Api:
    """One provider account's HTTP session: deadline, concurrency bound, error mapping, retries."""

    def __init__(
        self,
        provider: str,
        client: httpx.AsyncClient,
        *,
        secrets: Iterable[str],
        key: str,
        timeout: float,
        max_connections: int,
        duplicate_marker: str,
        retries: int = DEFAULT_RETRIES,
        sleep: Sleep | None = None,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.client = client
        self._secrets = tuple(s for s in secrets if s)
        self._key_hint = f"check the API key ending {mask(key)}"
        self.timeout = timeout
        self.slots = asyncio.Semaphore(max(1, max_connections))
        self.duplicate_marker = duplicate_marker.lower()
        self.retries = max(0, retries)
        self.retry_seconds = max(0.0, retry_seconds)
        self.sleep: Sleep = sleep or asyncio.sleep
        #: Paces every request (also `send`) to the host's budget; None = no pacing.
        self.limiter = limiter
        self.clock = clock

    def __repr__(self) -> str:
        return f"Api({self.provider!r}, {str(self.client.base_url)!r})"

    async def aclose(self) -> None:
        await self.client.aclose()

    def _clean(self, text: str) -> str:
        return one_line(scrub(text, self._secrets))

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        not_found: str | None = None,
    ) -> Any:
        """One request, never retried: the parsed JSON body of a 2xx, else a ProviderError."""
        async with self.slots:
            if self.limiter is not None:
                # Inside the slot, right before sending: a booked bucket must be the one the
                # request really leaves in.
                await self.limiter.acquire(self.sleep)
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self.client.request(method, url, params=params,
                                                         json=json_body)
            except (TimeoutError, httpx.TimeoutException):
                raise RetryableError(f"no answer within {self.timeout:g} s",
                                     provider=self.provider) from None
            except httpx.RequestError as exc:
                detail = self._clean(str(exc)) or "no detail"
                raise RetryableError(f"connection failed ({type(exc).__name__}: {detail})",
                                     provider=self.provider) from None
        if response.is_success:
            return self._body(response)
        raise self.error_for(response, not_found=not_found)

    def _body(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            # A 2xx we cannot read is ambiguous (an issue may have happened): treat as retryable.
            raise RetryableError(
                f"unreadable answer: {self._clean(response.text) or 'empty'}",
                status=response.status_code, provider=self.provider,
            ) from None

    def unexpected(self, what: str, status: int | None = None) -> RetryableError:
        """A 2xx whose body lacks what the API documents."""
        return RetryableError(f"unexpected answer: {self._clean(what)}", status=status,
                              provider=self.provider)

    def error_for(self, response: httpx.Response, *, not_found: str | None = None) -> ProviderError:
        """Map a non-2xx answer to its class (providers.md §3)."""
        status = response.status_code
        message = self._clean(extract_message(response))
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        common: dict[str, Any] = {"status": status, "retry_after": retry_after,
                                  "provider": self.provider}
        if status in (401, 403):
            return AuthError(message, hint=self._key_hint, **common)
        if status in (408, 429) or status >= 500:
            return RetryableError(message, **common)
        if status == 404 and not_found:
            return PermanentError(not_found, **common)
        if status == 422 and self.duplicate_marker and (
            self.duplicate_marker in message.lower()
            or self.duplicate_marker in response.text.lower()
        ):
            return DuplicateError(message, **common)
        return PermanentError(message, **common)

    def _delay(self, attempt: int, exc: RetryableError) -> float | None:
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= MAX_HONOURED_WAIT else None
        if exc.status == 429 and self.limiter is not None:
            # A paced host without Retry-After (Accredible): its budget frees up at a bucket
            # boundary, so a 2-8 s backoff would only spend attempts on more 429s.
            return self.limiter.backoff_s() * random.uniform(1.0, 1.2)
        base = 2.0 if exc.status == 429 else 0.5
        return min(8.0, base * 2**attempt) * random.uniform(0.5, 1.0)

    def what(self, method: str, url: str) -> str:
        """`GET organizations/X`: the call as one short phrase (relative to the base)."""
        base = str(self.client.base_url)
        if url.startswith(base):
            url = url[len(base):]
        elif "://" in url:
            url = httpx.URL(url).path.lstrip("/")
        return f"{method} {url.split('?', 1)[0]}"

    async def retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run a safe (read) call, retrying RetryableError within the budget (attempts and
        seconds, waits included), then raise one RetryableError saying what failed and how
        often: "GET organizations/X: 503 Service unavailable after 4 attempts in 31 s"."""
        attempt = 0
        busy = waited = 0.0
        while True:
            started = self.clock()
            try:
                return await call()
            except RetryableError as exc:
                busy += self.clock() - started
                delay = self._delay(attempt, exc) if attempt < self.retries else None
                if delay is not None and self.limiter is not None and exc.status == 429:
                    self.limiter.hold(delay)
                if delay is None or busy + waited + delay > self.retry_seconds:
                    raise self._exhausted(exc, what, attempt + 1, busy + waited) from None
                attempt += 1
                log.info("%s: %s failed (%s); retry %d in %.1f s",
                         self.provider, what, exc, attempt, delay)
                await self.sleep(delay)
                waited += delay

    def _exhausted(self, exc: RetryableError, what: str, attempts: int,
                   spent: float) -> RetryableError:
        """The last failure; after several attempts, one line with the whole story."""
        if attempts <= 1:
            return exc
        status = f"{exc.status} " if exc.status is not None else ""
        message = f"{what}: {status}{exc.message} after {attempts} attempts in {spent:.0f} s"
        return RetryableError(self._clean(message), status=exc.status,
                              retry_after=exc.retry_after, provider=exc.provider,
                              hint=exc.hint)

    async def read(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        not_found: str | None = None,
    ) -> Any:
        """A request that is safe to repeat (GET, search), retried on RetryableError."""
        return await self.retrying(
            lambda: self.send(method, url, params=params, json_body=json_body,
                              not_found=not_found),
            self.what(method, url),
        )


class ProviderClient:
    """What both clients share: an `Api` to talk through, `async with` and `aclose()`."""

    _api: Api

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; `follow` fetches the next one when the total is not known."""

    items: list[T]
    total_pages: int | None
    follow: Callable[[], Awaitable[Page[T]]] | None = None


def _report(on_page: OnPage | None, done: int, total: int) -> None:
    if on_page is not None:
        on_page(done, total)


async def collect_pages(
    fetch: Callable[[int], Awaitable[Page[T]]], on_page: OnPage | None = None
) -> list[T]:
    """Page 1, then pages 2..total concurrently (in page order), else follow next links.

    `on_page(done, total)` runs after every page; while following links without a known total,
    `total` is `done + 1` as long as another page is announced.
    """
    first = await fetch(1)
    pages = [first]
    if first.total_pages is not None:
        total = max(first.total_pages, 1)
        done = 1
        _report(on_page, done, total)

        async def one(number: int) -> Page[T]:
            nonlocal done
            page = await fetch(number)
            done += 1
            _report(on_page, done, total)
            return page

        pages += await gather_all([one(n) for n in range(2, total + 1)])
    else:
        page, done = first, 1
        _report(on_page, done, done + (page.follow is not None))
        while page.follow is not None and done < MAX_FOLLOWED_PAGES:
            page = await page.follow()
            pages.append(page)
            done += 1
            _report(on_page, done, done + (page.follow is not None))
    return [item for page in pages for item in page.items]


async def gather_all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise that failure itself."""
    if not coros:
        return []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as failures:
        raise _first_leaf(failures) from None
    return [task.result() for task in tasks]


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


class HasId(Protocol):
    @property
    def id(self) -> Any: ...


H = TypeVar("H", bound=HasId)


def unique(items: list[H]) -> list[H]:
    """Drop repeats by id (a list that changes while paged may repeat an item)."""
    seen: set[Any] = set()
    out: list[H] = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            out.append(item)
    return out
