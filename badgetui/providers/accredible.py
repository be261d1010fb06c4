"""Accredible Credential API client (providers.md §2): one account, one key.

Accredible has no revoke: badgetui expires a credential (`expire`). Reads and searches are retried;
`create_credential` never is, because there is no idempotency key: after an ambiguous failure
the caller searches (`search`) and adopts what exists (§2.7).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urljoin

import httpx

from badgetui.providers.http import (
    Api,
    OnPage,
    Page,
    ProviderClient,
    Sleep,
    as_dict,
    build_client,
    collect_pages,
    mask,
    unique,
    with_slash,
)

PROVIDER = "Accredible"
DUPLICATE_MARKER = "has already been taken"
GROUP_PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 100
#: v2 search pages with `from` only up to 10 000 results (§2.3); one learner never has that many.
SEARCH_MAX_RESULTS = 10_000


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

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> AccredibleCredential:
        """Both shapes: v1 (`recipient{...}`, `group_id`) and v2 search rows (flat)."""
        recipient = as_dict(data.get("recipient"))
        group = as_dict(data.get("group"))
        rid = recipient.get("id", data.get("recipient_id"))
        expired = data.get("expired_on")
        return cls(
            id=int(data["id"]),
            group_id=int(data.get("group_id") or group.get("id") or 0),
            email=str(recipient.get("email") or data.get("recipient_email") or ""),
            name=str(recipient.get("name") or data.get("recipient_name") or ""),
            expired_on=str(expired) if expired else None,
            recipient_id=str(rid) if rid not in (None, "") else None,
        )


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
        retries: int = 3,
        sleep: Sleep | None = None,
    ) -> None:
        self.base_url = with_slash(base_url)
        self.v2_url = v2_base(self.base_url)
        self._key_hint = mask(api_key)
        client = build_client(
            self.base_url,
            {"Authorization": f"Token token={api_key}", "Content-Type": "application/json"},
            transport=transport, timeout=timeout, max_connections=max_connections,
        )
        self._api = Api(
            PROVIDER, client, secrets=(api_key,), key=api_key, timeout=timeout,
            max_connections=max_connections, duplicate_marker=DUPLICATE_MARKER,
            retries=retries, sleep=sleep,
        )

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
        return await self._api.read(
            "GET", "issuer/all_groups", params={"page": number, "page_size": GROUP_PAGE_SIZE}
        )

    # -- calls ---------------------------------------------------------------------------
    async def issuer(self) -> dict[str, Any]:
        """The issuer behind the key: the connection test, so not retried."""
        body = await self._api.send("GET", "issuer/details")
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
        self, *, group_id: int, name: str, email: str, recipient_id: str, issued_on: date
    ) -> AccredibleCredential:
        """Create once. Never retried here: after a failure, `search` first."""
        payload = {"credential": {
            "recipient": {"name": name, "email": email, "id": recipient_id},
            "group_id": int(group_id),
            "issued_on": issued_on.strftime("%Y-%m-%d"),
        }}
        return self._credential(await self._api.send("POST", "credentials", json_body=payload))

    async def expire(self, credential_id: int, on: date | None) -> AccredibleCredential:
        """Set `expired_on` (badgetui's revoke), or clear it with None (restore)."""
        payload = {"credential": {"expired_on": on.strftime("%Y-%m-%d") if on else None}}
        return self._credential(
            await self._api.send("PATCH", f"credentials/{int(credential_id)}", json_body=payload)
        )

    async def credential(self, credential_id: int) -> AccredibleCredential:
        return self._credential(await self._api.read("GET", f"credentials/{int(credential_id)}"))

    async def search(self, *, email: str, group_id: int) -> list[AccredibleCredential]:
        """Credentials of one email in one group (v2 search), expired ones included."""
        found: list[AccredibleCredential] = []
        start = 0
        while start < SEARCH_MAX_RESULTS:
            payload = {"query": {"recipient_email": email, "group.id": int(group_id)},
                       "page": {"size": SEARCH_PAGE_SIZE, "from": start}}
            body = await self._api.read("POST", f"{self.v2_url}credentials/search",
                                        json_body=payload)
            rows = self._field(body, "credentials")
            if not isinstance(rows, list):
                raise self._api.unexpected("the search answer holds no list")
            found += [AccredibleCredential.from_api(r) for r in rows
                      if isinstance(r, dict) and "id" in r]
            meta = as_dict(body.get("meta"))
            count = _int_or_none(meta.get("count"))
            start += len(rows)
            if not rows or len(rows) < SEARCH_PAGE_SIZE or (count is not None and start >= count):
                break
        return unique(found)
