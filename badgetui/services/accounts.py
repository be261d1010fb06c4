"""Provider accounts: verified against the provider before they are stored, keys masked.

Credly organization keys carry their own expiry (`authorization_tokens[].expires_at`), stored at
add, rotate and key change; only when Credly lists none is 180 days after creation assumed.
A warning is raised from 30 days before. Credly accounts may use OAuth 2.0 client credentials
instead of a key, and every account may have its own API base (Accredible US or EU region).
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
from badgetui.providers.oauth import SHARED_TOKENS, OAuthCredentials, TokenCache, token_urls
from badgetui.services.common import Clock, ServiceError, from_db, to_db
from badgetui.services.templates import AccountView, TemplateService, _account_view, audit
from badgetui.settings import ACCREDIBLE_REGIONS, Settings
from badgetui.store.models import Badge, ProviderAccount, Template

CREDLY_KEY_LIFETIME = timedelta(days=180)
EXPIRY_WARNING = timedelta(days=30)


class Connections:
    """Builds provider clients from settings; tests and the demo inject an httpx transport.

    An account's own base (`api_url`, e.g. Accredible's EU region) wins over the settings'
    one; a Credly account with OAuth client credentials gets Bearer tokens from the token
    endpoint derived from that base (or `credly_oauth_url`), shared through one `TokenCache`.
    """

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        timeout: float | None = None,
        clock: Clock | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.timeout = timeout if timeout is not None else settings.provider_timeout
        self.clock = clock
        self.tokens = tokens if tokens is not None else SHARED_TOKENS

    def credly(
        self,
        organization_id: str,
        token: str = "",
        *,
        api_url: str = "",
        client_id: str = "",
        client_secret: str = "",
        max_connections: int = 20,
    ) -> CredlyClient:
        """A client authenticating with OAuth when `client_id` is set, else with `token`."""
        base = api_url or self.settings.credly_url
        oauth = None
        if client_id:
            oauth = OAuthCredentials(client_id, client_secret,
                                     token_urls(base, self.settings.credly_oauth_url))
        return CredlyClient(
            base, organization_id, token, oauth=oauth, token_cache=self.tokens,
            clock=self.clock, transport=self.transport, timeout=self.timeout,
            max_connections=max_connections,
        )

    def accredible(
        self, api_key: str, *, api_url: str = "", max_connections: int = 20
    ) -> AccredibleClient:
        return AccredibleClient(
            api_url or self.settings.accredible_url, api_key, transport=self.transport,
            timeout=self.timeout, max_connections=max_connections,
        )

    def for_account(
        self, account: ProviderAccount, *, max_connections: int = 20
    ) -> CredlyClient | AccredibleClient:
        """The account's client: its own base when set, OAuth when it has a client id."""
        if account.provider == "credly":
            return self.credly(account.identifier, account.api_key, api_url=account.api_url,
                               client_id=account.client_id,
                               client_secret=account.client_secret,
                               max_connections=max_connections)
        return self.accredible(account.api_key, api_url=account.api_url,
                               max_connections=max_connections)


def region_url(provider: str, region: str | None, api_url: str | None) -> str:
    """The API base to store for an account: `api_url`, or a named Accredible region
    (us, eu), or '' for the settings' base."""
    if api_url and region:
        raise ServiceError("give a region or an API URL, not both")
    if region:
        if provider != "accredible":
            raise ServiceError("regions are Accredible's (us, eu); for Credly use an API URL")
        url = ACCREDIBLE_REGIONS.get(region.strip().lower())
        if url is None:
            raise ServiceError(f"unknown Accredible region {region!r} (use us or eu)")
        return url
    url = (api_url or "").strip()
    if url and not url.startswith(("https://", "http://")):
        raise ServiceError(f"API URL {url!r} must start with https://")
    return url


def base_label(api_url: str) -> str:
    """How a stored base is shown: the region's name, "default" (settings), or the URL."""
    if not api_url:
        return "default"
    for name, url in ACCREDIBLE_REGIONS.items():
        if api_url.rstrip("/") == url.rstrip("/"):
            return name
    return api_url


def _instant(value: Any) -> datetime | None:
    """A Credly timestamp (`2020-05-28T16:44:41.034Z`) as an aware datetime, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(slots=True)
class CredlyCheck:
    """What verifying Credly access found: the organization's name and the key's dates."""

    name: str
    created_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(slots=True)
class Rotation:
    """A rotated key: the stored account and the expiry Credly reported (or assumed)."""

    view: AccountView
    expires_at: datetime | None
    assumed: bool


@dataclass(slots=True)
class KeyStatus:
    account_id: int
    label: str
    expires_at: datetime | None
    days_left: int | None
    warning: str
    #: True when the expiry is created + 180 days because Credly listed none for the key.
    assumed: bool = False


def provider_failure(provider: str, target: str, key: str, exc: ProviderError, *,
                     client_id: str = "") -> ServiceError:
    """One line a user can act on; the key appears only as its last 4 characters."""
    if isinstance(exc, AuthError) and client_id:
        return ServiceError(f"{provider} refused OAuth client {client_id} (secret {mask(key)}) "
                            f"for {target}: wrong client id or secret")
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
        self, organization_id: str, api_key: str = "", *, api_url: str = "",
        client_id: str = "", client_secret: str = "",
    ) -> CredlyCheck:
        """The organization as these credentials see it, and the key's own dates (listed by
        `authorization_tokens`; an OAuth client has no key, so none)."""
        target = f"organization {organization_id}"
        tokens: list[dict[str, Any]] = []
        try:
            async with self.connections.credly(
                organization_id, api_key, api_url=api_url, client_id=client_id,
                client_secret=client_secret,
            ) as client:
                try:
                    name = (await client.organization()).get("name")
                except AuthError as exc:
                    # An OAuth application may lack access to the organization object (403);
                    # the Credentials client reads the name off a template's owner instead.
                    if not client_id or exc.status != 403:
                        raise
                    name = await client.owner_name()
                if not client_id:
                    try:
                        tokens = await client.authorization_tokens()
                    except ProviderError:
                        tokens = []
        except ProviderError as exc:
            raise provider_failure("Credly", target, client_secret if client_id else api_key,
                                   exc, client_id=client_id) from None
        check = CredlyCheck(str(name or organization_id))
        for token in tokens:
            if token.get("token") == api_key:
                check.created_at = _instant(token.get("created_at"))
                check.expires_at = _instant(token.get("expires_at"))
        return check

    async def _verify_accredible(self, name: str, api_key: str, api_url: str = "") -> None:
        try:
            async with self.connections.accredible(api_key, api_url=api_url) as client:
                await client.issuer()
        except ProviderError as exc:
            raise provider_failure("Accredible", f"configuration {name!r}", api_key, exc) from None

    async def add_credly(
        self, organization_id: str, api_key: str = "", *, client_id: str = "",
        client_secret: str = "", api_url: str = "",
    ) -> AccountView:
        """Fetch the organization (its name) and the key's dates, then store it. With OAuth
        client credentials the token grant and an authenticated call are the check."""
        organization_id = organization_id.strip()
        api_key, client_id, client_secret = api_key.strip(), client_id.strip(), \
            client_secret.strip()
        api_url = region_url("credly", None, api_url)
        if bool(client_id) != bool(client_secret):
            raise ServiceError("OAuth needs both the client id and the client secret")
        if not api_key and not client_id:
            raise ServiceError("a Credly organization needs an API key or OAuth client "
                               "credentials")
        check = CredlyCheck(organization_id)
        if client_id:
            check = await self._verify_credly(organization_id, api_url=api_url,
                                              client_id=client_id, client_secret=client_secret)
        if api_key:
            named = check.name
            check = await self._verify_credly(organization_id, api_key, api_url=api_url)
            check.name = named if client_id else check.name
        return self.templates.add_account(
            "credly", organization_id, api_key, name=check.name,
            key_created_at=check.created_at, key_expires_at=check.expires_at, api_url=api_url,
            client_id=client_id, client_secret=client_secret,
        )

    async def add_accredible(self, name: str, api_key: str, *, api_url: str = "") -> AccountView:
        """Check the key with an authenticated call (against the account's own base, e.g. the
        EU region), then store the configuration."""
        name = name.strip()
        if not name:
            raise ServiceError("an Accredible configuration needs a name")
        api_url = region_url("accredible", None, api_url)
        await self._verify_accredible(name, api_key, api_url)
        return self.templates.add_account("accredible", name, api_key, name=name,
                                          api_url=api_url)

    async def update_key(self, ref: str | int, api_key: str) -> AccountView:
        """Replace an account's API key after the provider accepted it (a key issued by hand).

        The new key is checked exactly as when adding; only then is it stored with its own
        expiry, a delivery pause lifted and the change audited (with the key masked).
        """
        api_key = api_key.strip()
        if not api_key:
            raise ServiceError("an API key is needed")
        account = self.templates.account(ref)
        check = CredlyCheck(account.name)
        if account.provider == "credly":
            check = await self._verify_credly(account.identifier, api_key,
                                              api_url=account.api_url)
        else:
            await self._verify_accredible(account.name, api_key, account.api_url)
        ProviderAccount.update(
            api_key=api_key, key_created_at=to_db(check.created_at or self.clock()),
            key_expires_at=to_db(check.expires_at), paused_reason="",
        ).where(ProviderAccount.id == account.id).execute()
        audit(self.clock, "account.key", f"{account.provider}:{account.identifier}",
              {"key": mask(api_key), "was": mask(account.api_key)})
        return _account_view(ProviderAccount.get_by_id(account.id))

    async def rotate(self, ref: str | int) -> Rotation:
        """Rotate a Credly organization token through the API, verify the new one with an
        authenticated call, and store it only then (with its own expiry), lifting a delivery
        pause; audited masked. A failed verification keeps the old key stored and says so."""
        account = self.templates.account(ref)
        label = f"{account.provider}:{account.identifier}"
        target = f"organization {account.name}"
        if account.provider != "credly":
            raise ServiceError(f"{account.provider} keys do not rotate through the API: "
                               f"replace it with `badgetui provider rotate {account.id} "
                               "--api-key-file FILE`")
        if not account.api_key:
            raise ServiceError(f"Credly {target} uses OAuth client credentials: no key to "
                               "rotate")
        old = account.api_key
        try:
            async with self.connections.credly(account.identifier, old,
                                               api_url=account.api_url) as client:
                answer = await client.rotate_token()
        except ProviderError as exc:
            if isinstance(exc, PermanentError) and exc.status == 404:
                raise ServiceError(
                    f"Credly offers no key rotation for {target} (404): add a token under "
                    "Developers > Authorization Tokens and run `badgetui provider rotate "
                    f"{account.id} --api-key-file FILE`") from None
            raise provider_failure("Credly", target, old, exc) from None
        new = str(answer["token"])
        try:
            check = await self._verify_credly(account.identifier, new, api_url=account.api_url)
        except ServiceError as exc:
            audit(self.clock, "account.rotate.failed", label,
                  {"key": mask(new), "kept": mask(old), "error": str(exc)})
            raise ServiceError(
                f"Credly rotated the key of {target}, but the new key {mask(new)} failed "
                f"verification, so the old key {mask(old)} stays stored ({exc})") from None
        created = check.created_at or _instant(answer.get("created_at")) or self.clock()
        expires = check.expires_at or _instant(answer.get("expires_at"))
        assumed = expires is None
        if expires is None:
            expires = created + CREDLY_KEY_LIFETIME
        ProviderAccount.update(
            api_key=new, key_created_at=to_db(created),
            key_expires_at=None if assumed else to_db(expires), paused_reason="",
        ).where(ProviderAccount.id == account.id).execute()
        audit(self.clock, "account.rotate", label,
              {"key": mask(new), "was": mask(old), "expires_at": expires.isoformat(),
               "expiry": "assumed" if assumed else "credly"})
        return Rotation(_account_view(ProviderAccount.get_by_id(account.id)), expires, assumed)

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
        """Expiry of every Credly key, with a warning from 30 days before: the key's own
        `expires_at` as Credly listed it, else (flagged `assumed`) creation + 180 days.
        OAuth-only accounts and Accredible keys have no expiry to watch."""
        now = self.clock()
        out = []
        for account in ProviderAccount.select().order_by(ProviderAccount.id):
            label = f"{account.provider} {account.name}"
            if account.provider != "credly" or not account.api_key or (
                    account.key_expires_at is None and account.key_created_at is None):
                out.append(KeyStatus(account.id, label, None, None, ""))
                continue
            assumed = account.key_expires_at is None
            expires = (from_db(account.key_created_at) + CREDLY_KEY_LIFETIME  # type: ignore[operator]
                       if assumed else from_db(account.key_expires_at))
            assert expires is not None
            days = (expires - now).days
            warning = ""
            if expires <= now:
                warning = (f"API key {mask(account.api_key)} of {label} expired on "
                           f"{expires:%Y-%m-%d}")
            elif expires - now <= EXPIRY_WARNING:
                warning = (f"API key {mask(account.api_key)} of {label} expires in {days} days "
                           f"({expires:%Y-%m-%d}); rotate it")
            if warning and assumed:
                warning += " (assumed 180 days after creation: Credly listed no expiry)"
            out.append(KeyStatus(account.id, label, expires, days, warning, assumed))
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
