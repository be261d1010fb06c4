"""Provider accounts: verified against the provider before they are stored, keys masked.

Credly organization keys expire 180 days after creation; the expiry date is tracked and a
warning is raised from 30 days before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from peewee import Case, fn

from badgetui.domain.secrets import mask
from badgetui.providers.accredible import AccredibleClient
from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import AuthError, PermanentError, ProviderError, RetryableError
from badgetui.services.common import Clock, ServiceError, from_db, to_db
from badgetui.services.templates import AccountView, TemplateService, _account_view, audit
from badgetui.settings import Settings
from badgetui.store.models import Badge, ProviderAccount, Template

CREDLY_KEY_LIFETIME = timedelta(days=180)
EXPIRY_WARNING = timedelta(days=30)


class Connections:
    """Builds provider clients from settings; tests and the demo inject an httpx transport."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.timeout = timeout if timeout is not None else settings.provider_timeout

    def credly(
        self, organization_id: str, token: str, *, max_connections: int = 20
    ) -> CredlyClient:
        return CredlyClient(
            self.settings.credly_url, organization_id, token, transport=self.transport,
            timeout=self.timeout, max_connections=max_connections,
        )

    def accredible(self, api_key: str, *, max_connections: int = 20) -> AccredibleClient:
        return AccredibleClient(
            self.settings.accredible_url, api_key, transport=self.transport,
            timeout=self.timeout, max_connections=max_connections,
        )

    def for_account(
        self, account: ProviderAccount, *, max_connections: int = 20
    ) -> CredlyClient | AccredibleClient:
        if account.provider == "credly":
            return self.credly(account.identifier, account.api_key,
                               max_connections=max_connections)
        return self.accredible(account.api_key, max_connections=max_connections)


@dataclass(slots=True)
class KeyStatus:
    account_id: int
    label: str
    expires_at: datetime | None
    days_left: int | None
    warning: str


def provider_failure(provider: str, target: str, key: str, exc: ProviderError) -> ServiceError:
    """One line a user can act on; the key appears only as its last 4 characters."""
    if isinstance(exc, AuthError):
        return ServiceError(f"{provider} refused the API key {mask(key)} for {target}: "
                            "wrong or expired key")
    if isinstance(exc, RetryableError):
        return ServiceError(f"cannot reach {provider} for {target}: {exc.message}")
    if isinstance(exc, PermanentError) and exc.status == 404:
        return ServiceError(f"{provider} does not know {target} (unknown organization)")
    return ServiceError(f"{provider} refused {target}: {exc.message}")


class AccountService:
    def __init__(self, clock: Clock, connections: Connections, templates: TemplateService) -> None:
        self.clock = clock
        self.connections = connections
        self.templates = templates

    async def _verify_credly(
        self, organization_id: str, api_key: str
    ) -> tuple[dict[str, Any], datetime | None]:
        """The organization as the key sees it and the key's creation date (when listed)."""
        target = f"organization {organization_id}"
        created_at: datetime | None = None
        try:
            async with self.connections.credly(organization_id, api_key) as client:
                org = await client.organization()
                try:
                    tokens = await client.authorization_tokens()
                except ProviderError:
                    tokens = []
        except ProviderError as exc:
            raise provider_failure("Credly", target, api_key, exc) from None
        for token in tokens:
            if token.get("token") == api_key and token.get("created_at"):
                created_at = datetime.fromisoformat(str(token["created_at"]).replace("Z", "+00:00"))
        return org, created_at

    async def _verify_accredible(self, name: str, api_key: str) -> None:
        try:
            async with self.connections.accredible(api_key) as client:
                await client.issuer()
        except ProviderError as exc:
            raise provider_failure("Accredible", f"configuration {name!r}", api_key, exc) from None

    async def add_credly(self, organization_id: str, api_key: str) -> AccountView:
        """Fetch the organization (its name) and the key's creation date, then store it."""
        organization_id = organization_id.strip()
        org, created_at = await self._verify_credly(organization_id, api_key)
        return self.templates.add_account(
            "credly", organization_id, api_key, name=str(org.get("name") or organization_id),
            key_created_at=created_at,
        )

    async def add_accredible(self, name: str, api_key: str) -> AccountView:
        """Check the key with an authenticated call, then store the configuration."""
        name = name.strip()
        if not name:
            raise ServiceError("an Accredible configuration needs a name")
        await self._verify_accredible(name, api_key)
        return self.templates.add_account("accredible", name, api_key, name=name)

    async def update_key(self, ref: str | int, api_key: str) -> AccountView:
        """Replace an account's API key after the provider accepted it (a rotation).

        The new key is checked exactly as when adding; only then is it stored, a delivery
        pause lifted and the change audited (with the key masked).
        """
        api_key = api_key.strip()
        if not api_key:
            raise ServiceError("an API key is needed")
        account = self.templates.account(ref)
        key_created_at: datetime | None = None
        if account.provider == "credly":
            _, key_created_at = await self._verify_credly(account.identifier, api_key)
        else:
            await self._verify_accredible(account.name, api_key)
        ProviderAccount.update(
            api_key=api_key, key_created_at=to_db(key_created_at or self.clock()),
            paused_reason="",
        ).where(ProviderAccount.id == account.id).execute()
        audit(self.clock, "account.key", f"{account.provider}:{account.identifier}",
              {"key": mask(api_key), "was": mask(account.api_key)})
        return _account_view(ProviderAccount.get_by_id(account.id))

    def remove(self, ref: str | int, *, force: bool = False) -> str:
        """Remove an account with its templates; refused while it holds awarded badges."""
        account = self.templates.account(ref)
        held = (
            Badge.select().join(Template)
            .where((Template.account == account.id) & (Badge.status == "awarded"))
            .count()
        )
        if held and not force:
            raise ServiceError(
                f"{account.provider} account {account.name} holds {held} awarded badges; "
                "use --force to remove it with its templates and badges"
            )
        label = f"{account.provider}:{account.identifier}"
        account.delete_instance(recursive=False)
        audit(self.clock, "account.remove", label, {"badges": held})
        return label

    def resume(self, ref: str | int) -> str:
        """Lift a delivery pause set after the provider refused the key."""
        account = self.templates.account(ref)
        ProviderAccount.update(paused_reason="").where(ProviderAccount.id == account.id).execute()
        audit(self.clock, "account.resume", f"{account.provider}:{account.identifier}")
        return account.name

    def key_status(self) -> list[KeyStatus]:
        """Expiry of every Credly key, with a warning from 30 days before."""
        now = self.clock()
        out = []
        for account in ProviderAccount.select().order_by(ProviderAccount.id):
            label = f"{account.provider} {account.name}"
            if account.provider != "credly" or account.key_created_at is None:
                out.append(KeyStatus(account.id, label, None, None, ""))
                continue
            expires = from_db(account.key_created_at) + CREDLY_KEY_LIFETIME  # type: ignore[operator]
            days = (expires - now).days
            warning = ""
            if expires <= now:
                warning = (f"API key {mask(account.api_key)} of {label} expired on "
                           f"{expires:%Y-%m-%d}")
            elif expires - now <= EXPIRY_WARNING:
                warning = (f"API key {mask(account.api_key)} of {label} expires in {days} days "
                           f"({expires:%Y-%m-%d}); rotate it")
            out.append(KeyStatus(account.id, label, expires, days, warning))
        return out

    def template_counts(self) -> dict[int, tuple[int, int]]:
        """Per account id: (templates the provider still has, of those active)."""
        query = (
            Template.select(
                Template.account,
                fn.COUNT(Template.id).alias("total"),
                fn.SUM(Case(None, [(Template.is_active, 1)], 0)).alias("active"),
            )
            .where(Template.deleted == False)  # noqa: E712 - SQL comparison
            .group_by(Template.account)
            .tuples()
        )
        return {account: (total, int(active or 0)) for account, total, active in query}

    def touch_sync(self, account_id: int, result: str) -> None:
        ProviderAccount.update(last_sync_at=to_db(self.clock()), last_sync_result=result).where(
            ProviderAccount.id == account_id
        ).execute()
