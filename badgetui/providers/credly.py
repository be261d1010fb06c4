"""Credly Web Service API v1 client (providers.md §1): one organization, one token.

Reads are retried on retryable failures; `issue` never is, because Credly has no idempotency key:
after an ambiguous failure the caller looks the badge up with `find_badges` first (§1.11).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from badgetui.providers.errors import PermanentError
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
from badgetui.providers.oauth import Clock, CredlyOAuth, OAuthCredentials, TokenCache

PROVIDER = "Credly"
DUPLICATE_MARKER = "already has this badge"
ISSUED_AT_FORMAT = "%Y-%m-%d %H:%M:%S %z"


@dataclass(frozen=True)
class CredlyTemplate:
    id: str
    name: str
    description: str
    state: str
    image_url: str
    owner_id: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> CredlyTemplate:
        image = as_dict(data.get("image"))
        owner = as_dict(data.get("owner"))
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            state=str(data.get("state") or ""),
            image_url=str(data.get("image_url") or image.get("url") or ""),
            owner_id=str(owner["id"]) if owner.get("id") else None,
        )


@dataclass(frozen=True)
class CredlyBadge:
    id: str
    state: str
    badge_template_id: str
    recipient_email: str
    issuer_earner_id: str | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> CredlyBadge:
        template = as_dict(data.get("badge_template"))
        earner = data.get("issuer_earner_id")
        return cls(
            id=str(data["id"]),
            state=str(data.get("state") or ""),
            badge_template_id=str(data.get("badge_template_id") or template.get("id") or ""),
            recipient_email=str(data.get("recipient_email") or ""),
            issuer_earner_id=str(earner) if earner not in (None, "") else None,
        )


def _term(value: str) -> str:
    """A filter value: `|` and `,` separate terms and values, `::` keys, so none may pass."""
    return str(value).replace("|", " ").replace(",", " ").replace("::", " ")


def _seg(value: str) -> str:
    """An id as one path segment (ids are UUIDs, but nothing user-typed may break the path)."""
    return quote(str(value), safe="")


class CredlyClient(ProviderClient):
    """Calls for one Credly organization; use `async with` or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        organization_id: str,
        token: str = "",
        *,
        oauth: OAuthCredentials | None = None,
        token_cache: TokenCache | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        max_connections: int = 20,
        retries: int = 3,
        sleep: Sleep | None = None,
    ) -> None:
        """`token` is the organization's authorization token (HTTP Basic, the "legacy" key of
        openedx/credentials); with `oauth` every request carries a Bearer access token from
        the client-credentials grant instead (see `providers.oauth`)."""
        if not token and oauth is None:
            raise ValueError("a Credly client needs an authorization token or OAuth credentials")
        self.base_url = with_slash(base_url)
        self.organization_id = organization_id
        self.oauth = oauth
        headers = {"Content-Type": "application/json"}
        secrets: tuple[str, ...] = ()
        if oauth is None:
            self._token_hint = mask(token)
            basic = base64.b64encode(f"{token}:".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
            secrets = (token, basic)
        else:
            self._token_hint = f"oauth {oauth.client_id} {mask(oauth.client_secret)}"
            secrets = (oauth.client_secret,)
        client = build_client(self.base_url, headers, transport=transport, timeout=timeout,
                              max_connections=max_connections)
        if oauth is not None:
            client.auth = CredlyOAuth(oauth, label=f"OAuth client {oauth.client_id}",
                                      cache=token_cache, clock=clock)
        key = token if oauth is None else oauth.client_secret
        self._api = Api(
            PROVIDER, client, secrets=secrets, key=key, timeout=timeout,
            max_connections=max_connections, duplicate_marker=DUPLICATE_MARKER,
            retries=retries, sleep=sleep,
        )
        if oauth is not None:
            # The refusal hint names what the user fixes: the client, not an API key.
            self._api._key_hint = (f"check OAuth client {oauth.client_id} and its secret "
                                   f"ending {mask(oauth.client_secret)}")
        self._org = f"organizations/{_seg(organization_id)}"

    def __repr__(self) -> str:
        return (f"CredlyClient({self.base_url!r}, organization={self.organization_id!r}, "
                f"token={self._token_hint!r})")

    # -- helpers -------------------------------------------------------------------------
    def _data(self, body: Any) -> Any:
        if not isinstance(body, dict) or "data" not in body:
            raise self._api.unexpected("no data in the answer")
        return body["data"]

    def _object(self, body: Any) -> dict[str, Any]:
        data = self._data(body)
        if not isinstance(data, dict) or "id" not in data:
            raise self._api.unexpected("no object in the answer")
        return data

    def _page(self, body: Any, *, retry: bool) -> Page[dict[str, Any]]:
        data = self._data(body)
        if not isinstance(data, list):
            raise self._api.unexpected("the list answer holds no list")
        meta = as_dict(body.get("metadata"))
        total = meta.get("total_pages")
        next_url = meta.get("next_page_url")
        follow: Callable[[], Awaitable[Page[dict[str, Any]]]] | None = None
        if next_url:
            url = str(next_url)

            async def follow_link() -> Page[dict[str, Any]]:
                # Absolute: GET as it is, never re-joined onto the base (providers.md §1.5).
                return self._page(await self._get(url, retry=retry), retry=retry)

            follow = follow_link
        return Page([d for d in data if isinstance(d, dict)],
                    int(total) if isinstance(total, int | str) and str(total).isdigit() else None,
                    follow)

    async def _get(self, url: str, *, params: dict[str, Any] | None = None, retry: bool = True,
                   not_found: str | None = None) -> Any:
        if retry:
            return await self._api.read("GET", url, params=params, not_found=not_found)
        return await self._api.send("GET", url, params=params, not_found=not_found)

    async def _list(self, path: str, params: dict[str, Any], on_page: OnPage | None = None,
                    *, retry: bool = True) -> list[dict[str, Any]]:
        async def fetch(number: int) -> Page[dict[str, Any]]:
            query = {**params, "page": number}
            return self._page(await self._get(path, params=query, retry=retry), retry=retry)

        return await collect_pages(fetch, on_page)

    # -- calls ---------------------------------------------------------------------------
    async def organization(self) -> dict[str, Any]:
        """The organization (name in `["name"]`): the connection test, retried on transient
        failures within the client's retry budget (a flaky moment must not fail `provider add`)."""
        body = await self._get(self._org, not_found="unknown organization")
        return self._object(body)

    async def templates(
        self, state: str = "active", *, on_page: OnPage | None = None
    ) -> list[CredlyTemplate]:
        """Every template in `state` (comma-separated states allowed; "" for all), all pages."""
        params: dict[str, Any] = {"filter": f"state::{state}"} if state else {}
        rows = await self._list(f"{self._org}/badge_templates", params, on_page)
        wanted = {s.strip() for s in state.split(",") if s.strip()}
        found = [CredlyTemplate.from_api(r) for r in rows if "id" in r]
        return unique([t for t in found if not wanted or t.state in wanted])

    async def template(self, template_id: str) -> CredlyTemplate:
        body = await self._get(f"{self._org}/badge_templates/{_seg(template_id)}")
        return CredlyTemplate.from_api(self._object(body))

    async def event(self, event_id: str) -> dict[str, Any]:
        """A webhook event as Credly holds it (a forged id fails here with a 404, never
        retried); transient failures are retried within the budget."""
        body = await self._get(f"{self._org}/events/{_seg(event_id)}")
        return self._object(body)

    async def issue(
        self,
        *,
        template_id: str,
        email: str,
        first_name: str,
        last_name: str,
        issued_at: datetime,
        earner_id: str,
        expires_at: datetime | None = None,
        evidence: list[dict[str, Any]] | None = None,
    ) -> CredlyBadge:
        """Issue once. Never retried here: after a failure, look up with `find_badges` first.
        Without `expires_at` the template's own default applies at Credly (providers.md §1.8)."""
        if issued_at.tzinfo is None:
            issued_at = issued_at.replace(tzinfo=UTC)
        payload: dict[str, Any] = {
            "recipient_email": email,
            "issued_to_first_name": first_name,
            "issued_to_last_name": last_name,
            "badge_template_id": template_id,
            "issued_at": issued_at.strftime(ISSUED_AT_FORMAT),
            "issuer_earner_id": earner_id,
        }
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            payload["expires_at"] = expires_at.strftime(ISSUED_AT_FORMAT)
        if evidence:
            payload["evidence"] = evidence
        body = await self._api.send("POST", f"{self._org}/badges", json_body=payload)
        return CredlyBadge.from_api(self._object(body))

    async def find_badges(self, *, earner_id: str, template_id: str) -> list[CredlyBadge]:
        """Badges of one learner (our earner id) for one template, revoked ones included.

        Every row is re-checked here: a server that filters loosely (prefix, partial match,
        an ignored key) must never make another learner's badge look like ours."""
        query = f"issuer_earner_id::{_term(earner_id)}|badge_template_id::{_term(template_id)}"
        rows = await self._list(f"{self._org}/badges", {"filter": query})
        found = unique([CredlyBadge.from_api(r) for r in rows if "id" in r])
        return [b for b in found
                if b.issuer_earner_id == earner_id and b.badge_template_id == template_id]

    async def find_badges_by_email(self, *, email: str, template_id: str) -> list[CredlyBadge]:
        """Badges of one recipient email for one template (badges issued without an
        `issuer_earner_id`, as Open edX Credentials issues them), re-checked like above."""
        query = f"recipient_email_all::{_term(email)}|badge_template_id::{_term(template_id)}"
        rows = await self._list(f"{self._org}/badges", {"filter": query})
        found = unique([CredlyBadge.from_api(r) for r in rows if "id" in r])
        wanted = email.strip().lower()
        return [b for b in found
                if b.recipient_email.strip().lower() == wanted
                and b.badge_template_id == template_id]

    async def template_badges(
        self, template_id: str, *, on_page: OnPage | None = None
    ) -> list[CredlyBadge]:
        """Every badge of one template, all states, all pages (reconcile), re-checked."""
        query = f"badge_template_id::{_term(template_id)}"
        rows = await self._list(f"{self._org}/badges", {"filter": query}, on_page)
        found = unique([CredlyBadge.from_api(r) for r in rows if "id" in r])
        return [b for b in found if b.badge_template_id == template_id]

    async def badge(self, badge_id: str) -> CredlyBadge:
        body = await self._get(f"{self._org}/badges/{_seg(badge_id)}")
        return CredlyBadge.from_api(self._object(body))

    async def revoke(self, badge_id: str, reason: str) -> CredlyBadge:
        """Revoke once; a 422 on a repeated revoke means "look it up" (it may be done already)."""
        payload = {"reason": reason, "suppress_revoke_notification_email": False}
        body = await self._api.send("PUT", f"{self._org}/badges/{_seg(badge_id)}/revoke",
                                    json_body=payload)
        return CredlyBadge.from_api(self._object(body))

    async def authorization_tokens(self) -> list[dict[str, Any]]:
        """The organization's tokens (for key expiry); asked right after the connection test."""
        return await self._list(f"{self._org}/authorization_tokens", {})

    # -- key rotation and OAuth (providers.md §1.2-1.3) ---------------------------------
    async def rotate_token(self) -> dict[str, Any]:
        """Rotate the organization token this client authenticates with: POST
        `authorization_tokens/rotate`, answer `data.token` (the Open edX Credentials client
        and its docs use it; providers.md calls it unconfirmed). The old token may die at once,
        so this is sent once, never retried: a second rotation would lose the first new key."""
        if self.oauth is not None:
            raise PermanentError("an OAuth account has no organization token to rotate",
                                 provider=PROVIDER)
        body = await self._api.send("POST", f"{self._org}/authorization_tokens/rotate",
                                    json_body={})
        data = self._data(body)
        if not isinstance(data, dict) or not isinstance(data.get("token"), str) \
                or not data["token"]:
            raise self._api.unexpected("the rotation answer holds no token")
        return data

    async def owner_name(self) -> str | None:
        """The organization's name from its first template's `owner` (one small page): what
        the Open edX Credentials client reads when OAuth cannot see the organization itself."""
        body = await self._get(f"{self._org}/badge_templates", params={"per": 1, "page": 1})
        rows = self._data(body)
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            name = as_dict(rows[0].get("owner")).get("name")
            return str(name) if name else None
        return None
