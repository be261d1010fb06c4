"""Credly OAuth 2.0 client credentials as an `httpx.Auth`, so every request path gets it.

Why an Auth and not a header: an access token lives about two hours (`expires_in`, 7200 by
default), so it must be fetched lazily, cached, renewed shortly before it ends and once more
when Credly answers 401 (a token revoked early, or a clock that disagrees). Doing that inside
the auth flow covers reads, issues, paging links and webhook fetches alike.

Tokens are shared per (token URL, client id, secret) by a process-wide `TokenCache`: delivery
builds one client per account and the console, sync and webhooks build their own, and they
must not each ask for a token. A token request never retries by itself (the caller's read
budget does that); a refused client (`invalid_client`) is an `AuthError` naming the client.

Where the token endpoint lives is not settled (providers.md §1.1): Credly's docs say
`https://www.credly.com/oauth/token` ("not the API host"); the Open edX Credentials client
(openedx/credentials PR #3002) posts to the API host's `/oauth/token`. `token_urls` lists the
documented URL first and the API host's second; a 404/405 on one moves to the next.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from badgetui.domain.secrets import mask
from badgetui.providers.errors import AuthError, PermanentError, RetryableError
from badgetui.providers.http import extract_message, one_line, scrub

PROVIDER = "Credly"
#: The scopes badgetui needs: templates (sync), issued badges (delivery), events (webhooks).
#: `authorization_tokens` is left out: an OAuth account has no organization token to list, and
#: asking for a scope the application lacks may refuse the whole request (invalid_scope).
DEFAULT_SCOPE = "badge_templates issued_badges events"
DEFAULT_EXPIRES_IN = 7200
#: Renew this long before the announced end (the Credentials client uses 60 s as well).
REFRESH_EARLY = timedelta(seconds=60)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    """An OAuth application of one organization; `token_urls` are tried in order."""

    client_id: str
    client_secret: str
    token_urls: tuple[str, ...]
    scope: str = DEFAULT_SCOPE

    def __repr__(self) -> str:
        return (f"OAuthCredentials(client_id={self.client_id!r}, "
                f"client_secret={mask(self.client_secret)!r}, token_urls={self.token_urls!r})")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def token_urls(api_base: str, override: str | None = None) -> tuple[str, ...]:
    """The token endpoints for an API base: the documented one first, then the API host's.

    - `https://api.credly.com/v1/` → `https://www.credly.com/oauth/token` (documented), then
      `https://api.credly.com/oauth/token` (what the Open edX Credentials client posts to);
    - `https://sandbox-api.credly.com/v1/` → `https://sandbox.credly.com/oauth/token` (the
      sandbox's web host; unconfirmed), then the sandbox API host's;
    - any other base (the emulator's `http://host:port/credly/v1/`) → the base without its
      version segment plus `oauth/token` (`/credly/oauth/token`), then the origin's
      `/oauth/token`.
    `override` (a full token URL from the settings) replaces them all.
    """
    if override:
        return (override,)
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    api_host_url = _origin(api_base) + "/oauth/token"
    web_host = ""
    if host.startswith("sandbox-api."):
        web_host = "sandbox." + host.removeprefix("sandbox-api.")
    elif host.startswith("api.") and (host.endswith(".credly.com") or
                                      host.endswith(".youracclaim.com")):
        web_host = "www." + host.removeprefix("api.")
    if web_host:
        netloc = web_host if parts.port is None else f"{web_host}:{parts.port}"
        first = urlunsplit((parts.scheme, netloc, "/oauth/token", "", ""))
    else:
        path = parts.path.rstrip("/")
        if path.rsplit("/", 1)[-1].lower() in ("v1", "v2"):
            path = path.rsplit("/", 1)[0]
        first = urlunsplit((parts.scheme, parts.netloc, f"{path}/oauth/token", "", ""))
    return tuple(dict.fromkeys((first, api_host_url)))


@dataclass(slots=True)
class _Token:
    value: str
    renew_at: datetime
    url: str


class TokenCache:
    """Access tokens by (token URL list, client id, secret digest), shared by every client.

    Thread-safe (the console runs `asyncio.run` in several worker threads); the per-key lock
    that keeps concurrent requests from fetching one token many times is per event loop, since
    an asyncio lock belongs to one loop.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                               dict[tuple[str, ...], asyncio.Lock]] = (
            weakref.WeakKeyDictionary())
        #: Token requests sent (all keys): what tests and the bench assert on.
        self.requests = 0

    @staticmethod
    def key(credentials: OAuthCredentials) -> tuple[str, ...]:
        digest = hashlib.sha256(credentials.client_secret.encode()).hexdigest()[:16]
        return (*credentials.token_urls, credentials.client_id, digest)

    def get(self, key: tuple[str, ...], now: datetime) -> _Token | None:
        with self._guard:
            token = self._tokens.get(key)
        return token if token is not None and now < token.renew_at else None

    def put(self, key: tuple[str, ...], token: _Token) -> None:
        with self._guard:
            self._tokens[key] = token

    def drop(self, key: tuple[str, ...], value: str) -> None:
        """Forget `value` (refused by the API), unless another request already replaced it."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.value == value:
                del self._tokens[key]

    def lock(self, key: tuple[str, ...]) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            locks = self._locks.setdefault(loop, {})
            return locks.setdefault(key, asyncio.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()
            self.requests = 0


#: The process's token cache (tests clear it between emulators).
SHARED_TOKENS = TokenCache()


class CredlyOAuth(httpx.Auth):
    """Bearer tokens from the client-credentials grant; renewed early and once after a 401."""

    requires_response_body = False  # token answers are read here; the API's by the caller

    def __init__(self, credentials: OAuthCredentials, *, label: str = "",
                 cache: TokenCache | None = None, clock: Clock | None = None) -> None:
        self.credentials = credentials
        self.label = label or f"OAuth client {credentials.client_id}"
        self.cache = cache if cache is not None else SHARED_TOKENS
        self.clock: Clock = clock or _utc_now
        self._key = TokenCache.key(credentials)
        self._secrets = (credentials.client_secret,)

    def __repr__(self) -> str:
        return f"CredlyOAuth({self.credentials!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Any:  # pragma: no cover - async only
        raise RuntimeError("CredlyOAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # At most two rounds: a 401 drops the token and the request goes once more with a
        # fresh one; a second 401 goes back to the caller as it is (an AuthError there).
        stale: str | None = None
        while True:
            token = self.cache.get(self._key, self.clock())
            if token is None or token.value == stale:
                async with self.cache.lock(self._key):
                    token = self.cache.get(self._key, self.clock())
                    if token is None or token.value == stale:
                        flow = self._fetch()
                        step = self._drive(flow)
                        while isinstance(step, httpx.Request):
                            answer = yield step
                            await answer.aread()
                            step = self._drive(flow, answer)
                        token = step
            assert token is not None
            request.headers["Authorization"] = f"Bearer {token.value}"
            response = yield request
            if response.status_code != 401 or stale is not None:
                return
            stale = token.value
            self.cache.drop(self._key, stale)

    # -- the token request, as a small generator of requests ---------------------------------
    @staticmethod
    def _drive(flow: Any, response: httpx.Response | None = None) -> Any:
        """Advance `_fetch`: the next request to send, or the `_Token` it ended with."""
        try:
            return flow.send(response)
        except StopIteration as done:
            return done.value

    def _fetch(self) -> Any:
        """Yield token requests (the next URL after a 404/405) and return the new `_Token`."""
        creds = self.credentials
        form = {"client_id": creds.client_id, "client_secret": creds.client_secret,
                "grant_type": "client_credentials", "scope": creds.scope}
        last: httpx.Response | None = None
        for url in creds.token_urls:
            self.cache.requests += 1
            response: httpx.Response = yield httpx.Request(
                "POST", url, data=form, headers={"Accept": "application/json"})
            if response.status_code in (404, 405):
                last = response
                continue
            return self._token_from(response, url)
        assert last is not None
        raise PermanentError(
            f"no OAuth token endpoint at {', '.join(creds.token_urls)} "
            f"({last.status_code}); set credly_oauth_url", status=last.status_code,
            provider=PROVIDER)

    def _token_from(self, response: httpx.Response, url: str) -> _Token:
        status = response.status_code
        message = one_line(scrub(extract_message(response), self._secrets))
        if status in (400, 401, 403):
            raise AuthError(
                f"the token endpoint refused {self.label}: {message}", status=status,
                provider=PROVIDER,
                hint=f"check the OAuth client secret ending {mask(self.credentials.client_secret)}")
        if status in (408, 429) or status >= 500:
            raise RetryableError(f"token endpoint: {message}", status=status, provider=PROVIDER)
        if not response.is_success:
            raise PermanentError(f"token endpoint: {message}", status=status, provider=PROVIDER)
        try:
            body = response.json()
        except ValueError:
            body = None
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise RetryableError("token endpoint: no access_token in the answer",
                                 status=status, provider=PROVIDER)
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            seconds = float(DEFAULT_EXPIRES_IN)
        # 60 s early, but never later than halfway through a short-lived token.
        early = min(REFRESH_EARLY, timedelta(seconds=max(seconds, 0) / 2))
        token = _Token(value, self.clock() + timedelta(seconds=seconds) - early, url)
        self.cache.put(self._key, token)
        return token


def secrets_of(credentials: OAuthCredentials | None) -> Iterable[str]:
    """What must never appear in a message: the client secret."""
    return (credentials.client_secret,) if credentials is not None else ()
