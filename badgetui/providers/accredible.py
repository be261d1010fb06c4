"""Accredible Credential API client (providers.md §2): one account, one key.

Accredible has no revoke: badgetui expires a credential (`expire`). Reads and searches are retried;
`create_credential` never is, because there is no idempotency key: after an ambiguous failure
the caller searches (`search`) and adopts what exists (§2.7). Updates use PUT, the documented
method (openapi.json `/v1/credentials/{id}`). Every request is paced to Accredible's documented
budget (2,000 per 5 minutes per IP, `pacing.ACCREDIBLE_RATE_LIMIT`), shared per host.

Lookups never trust the server's filter: every row a search returns is checked again here
(email case-insensitively, group id), so a server that matches loosely (prefix, substring, an
ignored key) cannot make badgetui adopt someone else's credential.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urljoin

import httpx

from badgetui.providers.http import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_SECONDS,
    Api,
    OnPage,
    Page,
    ProviderClient,
    Sleep,
    as_dict,
    build_client,
    collect_pages,
    gather_all,
    mask,
    unique,
    with_slash,
)
from badgetui.providers.pacing import (
    ACCREDIBLE_RATE_LIMIT,
    RateLimit,
    RateLimiter,
    limiter_for,
)

PROVIDER = "Accredible"
DUPLICATE_MARKER = "has already been taken"
GROUP_PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 100
#: v2 search: `from` + `size` reach only the first 10 000 results; beyond, `page.cursor` (the
#: opaque token of the previous answer's `meta.cursor`) continues (openapi.json, v2 search).
SEARCH_MAX_RESULTS = 10_000
#: A stable order for offset paging (`id` is a documented v2 sort key).
SEARCH_SORT = {"id": "asc"}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class AccredibleGroup:
    id: int
    name: str
    course_name: str
    description: str
    design_id: int | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> AccredibleGroup:
        design = next(
            (d for key in ("primary_design_id", "badge_design_id", "certificate_design_id")
             if (d := _int_or_none(data.get(key))) is not None),
            None,
        )
        return cls(
            id=int(data["id"]),
            name=str(data.get("name") or ""),
            course_name=str(data.get("course_name") or ""),
            description=str(data.get("course_description") or data.get("description") or ""),
            design_id=design,
        )


@dataclass(frozen=True)
class AccredibleCredential:
    id: int
    group_id: int
    email: str
    name: str
    expired_on: str | None
    recipient_id: str | None = None
    #: Published? (`approve`; False when created without credits). None: not reported.
    approve: bool | None = None
    issued_on: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> AccredibleCredential:
        """Both shapes: v1 (`recipient{...}`, `group_id`) and v2 search rows (flat)."""
        recipient = as_dict(data.get("recipient"))
        group = as_dict(data.get("group"))
        rid = recipient.get("id", data.get("recipient_id"))
        expired = data.get("expired_on")
        approve = data.get("approve")
        issued = data.get("issued_on")
        return cls(
            id=int(data["id"]),
            group_id=int(data.get("group_id") or group.get("id") or 0),
            email=str(recipient.get("email") or data.get("recipient_email") or ""),
            name=str(recipient.get("name") or data.get("recipient_name") or ""),
            expired_on=str(expired)[:10] if expired else None,
            recipient_id=str(rid) if rid not in (None, "") else None,
            approve=approve if isinstance(approve, bool) else None,
            issued_on=str(issued)[:10] if issued else None,
        )

    def expiry(self) -> date | None:
        """`expired_on` as a date (None: never expires, or a date we cannot read)."""
        if not self.expired_on:
            return None
        try:
            return date.fromisoformat(self.expired_on[:10])
        except ValueError:
            return None

    def live_on(self, day: date) -> bool:
        """Not expired on `day`: no expiry, or one still ahead. A group's `auto_expiry` gives
        fresh credentials a future `expired_on`, so "has an expiry" does not mean "expired".
        An expiry we cannot read counts as expired (never adopt what may be revoked)."""
        if not self.expired_on:
            return True
        when = self.expiry()
        return when is not None and when > day

    def matches(self, *, email: str | None = None, group_id: int | None = None) -> bool:
        """The client-side re-check of a search row: exact group, email case-insensitively."""
        if group_id is not None and self.group_id != int(group_id):
            return False
        return email is None or self.email.strip().lower() == email.strip().lower()


def v2_base(base_url: str) -> str:
    """The v2 base next to a v1 base: ".../v1/" -> ".../v2/"."""
    base = with_slash(base_url)
    return base[: -len("v1/")] + "v2/" if base.endswith("v1/") else urljoin(base, "../v2/")


class AccredibleClient(ProviderClient):
    """Calls for one Accredible account; use `async with` or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        max_connections: int = 20,
        retries: int = DEFAULT_RETRIES,
        sleep: Sleep | None = None,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        rate_limit: RateLimit | None = ACCREDIBLE_RATE_LIMIT,
    ) -> None:
        """`retries` and `retry_seconds` bound each read's retries (attempts - 1, seconds);
        `rate_limit` paces requests through the limiter shared by every client of this host
        (None: no pacing)."""
        self.base_url = with_slash(base_url)
        self.v2_url = v2_base(self.base_url)
        self._key_hint = mask(api_key)
        client = build_client(
            self.base_url,
            {"Authorization": f"Token token={api_key}", "Content-Type": "application/json"},
            transport=transport, timeout=timeout, max_connections=max_connections,
        )
        limiter = (limiter_for(self.base_url, rate_limit, transport)
                   if rate_limit is not None else None)
        self._api = Api(
            PROVIDER, client, secrets=(api_key,), key=api_key, timeout=timeout,
            max_connections=max_connections, duplicate_marker=DUPLICATE_MARKER,
            retries=retries, sleep=sleep, retry_seconds=retry_seconds, limiter=limiter,
        )

    @property
    def limiter(self) -> RateLimiter | None:
        """The shared pacing limiter of this host (None when pacing is off)."""
        return self._api.limiter

    def __repr__(self) -> str:
        return f"AccredibleClient({self.base_url!r}, key={self._key_hint!r})"

    # -- helpers -------------------------------------------------------------------------
    def _field(self, body: Any, key: str) -> Any:
        if not isinstance(body, dict) or key not in body:
            raise self._api.unexpected(f"no {key} in the answer")
        return body[key]

    def _credential(self, body: Any) -> AccredibleCredential:
        data = self._field(body, "credential")
        if not isinstance(data, dict) or "id" not in data:
            raise self._api.unexpected("no credential in the answer")
        return AccredibleCredential.from_api(data)

    def _groups_page(self, body: Any) -> Page[dict[str, Any]]:
        rows = self._field(body, "groups")
        if not isinstance(rows, list):
            raise self._api.unexpected("the group list holds no list")
        meta = as_dict(body.get("meta"))
        next_page = _int_or_none(meta.get("next_page"))
        follow: Callable[[], Awaitable[Page[dict[str, Any]]]] | None = None
        if next_page is not None:
            async def follow_next() -> Page[dict[str, Any]]:
                return self._groups_page(await self._groups_request(next_page))

            follow = follow_next
        return Page([r for r in rows if isinstance(r, dict)],
                    _int_or_none(meta.get("total_pages")), follow)

    async def _groups_request(self, number: int) -> Any:
        # POST groups/search: the listing openapi.json documents (GET all_groups is deprecated);
        # a search, so safe to repeat.
        return await self._api.read(
            "POST", "issuer/groups/search",
            json_body={"page": number, "page_size": GROUP_PAGE_SIZE},
        )

    # -- calls ---------------------------------------------------------------------------
    async def issuer(self) -> dict[str, Any]:
        """The issuer behind the key (the connection test), retried within the budget."""
        body = await self._api.read("GET", "issuer/details")
        issuer = body.get("issuer") if isinstance(body, dict) else None
        if not isinstance(issuer, dict):
            raise self._api.unexpected("no issuer in the answer")
        return issuer

    async def groups(self, *, on_page: OnPage | None = None) -> list[AccredibleGroup]:
        """Every group the key sees, all pages (the reference client saw only the first 50)."""

        async def fetch(number: int) -> Page[dict[str, Any]]:
            return self._groups_page(await self._groups_request(number))

        rows = await collect_pages(fetch, on_page)
        return unique([AccredibleGroup.from_api(r) for r in rows if "id" in r])

    async def design_image(self, design_id: int | None) -> str | None:
        """The design's image URL; no request at all for a group without a design."""
        if design_id is None:
            return None
        body = await self._api.read("GET", f"designs/{int(design_id)}")
        design = self._field(body, "design")
        url = design.get("rasterized_content_url") if isinstance(design, dict) else None
        return str(url) if url else None

    async def create_credential(
        self, *, group_id: int, name: str, email: str, recipient_id: str, issued_on: date,
        expired_on: date | None = None, evidence_items: list[dict[str, Any]] | None = None,
    ) -> AccredibleCredential:
        """Create once. Never retried here: after a failure, `search` first. Without
        `expired_on` the group's own auto-expiry applies."""
        credential: dict[str, Any] = {
            "recipient": {"name": name, "email": email, "id": recipient_id},
            "group_id": int(group_id),
            "issued_on": issued_on.strftime("%Y-%m-%d"),
        }
        if expired_on is not None:
            credential["expired_on"] = expired_on.strftime("%Y-%m-%d")
        if evidence_items:
            credential["evidence_items"] = evidence_items
        payload = {"credential": credential}
        return self._credential(await self._api.send("POST", "credentials", json_body=payload))

    async def expire(self, credential_id: int, on: date | None) -> AccredibleCredential:
        """Set `expired_on` (badgetui's revoke), or clear it with None (restore). PUT is the
        documented update; safe to repeat, but left to the caller (a delivery job) to retry."""
        payload = {"credential": {"expired_on": on.strftime("%Y-%m-%d") if on else None}}
        return await self._update(credential_id, payload)

    async def publish(self, credential_id: int) -> AccredibleCredential:
        """Publish a credential left unpublished (`approve: false`, e.g. created without
        credits): PUT `{"credential": {"approve": true}}`, the documented update example."""
        return await self._update(credential_id, {"credential": {"approve": True}})

    async def _update(self, credential_id: int, payload: dict[str, Any]) -> AccredibleCredential:
        return self._credential(
            await self._api.send("PUT", f"credentials/{int(credential_id)}", json_body=payload)
        )

    async def credential(self, credential_id: int) -> AccredibleCredential:
        return self._credential(await self._api.read("GET", f"credentials/{int(credential_id)}"))

    async def search(self, *, email: str, group_id: int) -> list[AccredibleCredential]:
        """Credentials of one email in one group (v2 search), expired and unpublished ones
        included; every row re-checked here (exact group, email case-insensitively)."""
        query = {"recipient_email": email, "group.id": int(group_id)}
        found = await self._search_all(query)
        return [c for c in found if c.matches(email=email, group_id=group_id)]

    async def group_credentials(
        self, group_id: int, *, on_page: OnPage | None = None
    ) -> list[AccredibleCredential]:
        """Every credential of one group (v2 search, all pages; past 10 000 by cursor), each
        re-checked to belong to the group."""
        found = await self._search_all({"group.id": int(group_id)}, on_page)
        return [c for c in found if c.matches(group_id=group_id)]

    async def _search_page(
        self, query: dict[str, Any], page: dict[str, Any]
    ) -> tuple[list[AccredibleCredential], dict[str, Any]]:
        payload = {"query": query, "sort": SEARCH_SORT, "page": page}
        body = await self._api.read("POST", f"{self.v2_url}credentials/search",
                                    json_body=payload)
        rows = self._field(body, "credentials")
        if not isinstance(rows, list):
            raise self._api.unexpected("the search answer holds no list")
        found = [AccredibleCredential.from_api(r) for r in rows
                 if isinstance(r, dict) and "id" in r]
        return found, as_dict(body.get("meta"))

    async def _search_all(
        self, query: dict[str, Any], on_page: OnPage | None = None
    ) -> list[AccredibleCredential]:
        """All results: offsets up to 10 000 (concurrently once `meta.count` is known), then
        `page.cursor` from the last answer. The step is the page size the server reports, so
        a server that caps `size` below ours does not make us skip rows."""
        first, meta = await self._search_page(query, {"from": 0, "size": SEARCH_PAGE_SIZE})
        count = _int_or_none(meta.get("count"))
        step = min(_int_or_none(meta.get("size")) or SEARCH_PAGE_SIZE, SEARCH_PAGE_SIZE)
        if first and len(first) < step and (count is None or count > len(first)):
            step = len(first)
        if count is None:  # no total: offsets until a short page
            found, start, last = list(first), len(first), first
            while last and len(last) >= step and start + step <= SEARCH_MAX_RESULTS:
                last, meta = await self._search_page(query, {"from": start, "size": step})
                found += last
                start += len(last)
            return unique(found)
        total_pages = max(1, -(-count // max(step, 1)))
        done = 1
        if on_page is not None:
            on_page(done, total_pages)

        async def at(offset: int) -> tuple[list[AccredibleCredential], dict[str, Any]]:
            nonlocal done
            page = await self._search_page(query, {"from": offset, "size": step})
            done += 1
            if on_page is not None:
                on_page(done, total_pages)
            return page

        offsets = list(range(step, min(count, SEARCH_MAX_RESULTS), step)) if first else []
        pages = await gather_all([at(offset) for offset in offsets])
        found = list(first) + [c for rows, _ in pages for c in rows]
        if count > SEARCH_MAX_RESULTS:
            cursor = (pages[-1][1] if pages else meta).get("cursor")
            seen: set[str] = set()
            while len(found) < count:
                if not cursor:
                    raise self._api.unexpected(
                        f"{count} results but no cursor to page past {SEARCH_MAX_RESULTS}")
                if str(cursor) in seen:
                    raise self._api.unexpected("the search cursor repeats itself")
                seen.add(str(cursor))
                rows, more = await self._search_page(query, {"cursor": cursor, "size": step})
                if not rows:
                    break
                found += rows
                done += 1
                if on_page is not None:
                    on_page(done, max(done, total_pages))
                cursor = more.get("cursor")
        return unique(found)
