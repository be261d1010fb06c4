"""Credly OAuth 2.0 client credentials, key rotation and expiry, per-account API bases.

Everything runs against the emulator: in process through an httpx ASGI transport, or (for the
two-region case) two emulators on loopback HTTP. Assertions are on what the emulator received
and on what the database holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import AuthError
from badgetui.providers.oauth import SHARED_TOKENS, OAuthCredentials, TokenCache, token_urls
from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.services.accounts import region_url
from badgetui.services.common import ServiceError
from badgetui.settings import Settings
from badgetui.store.models import AuditLog, ProviderAccount, Template
from tests.conftest import CREDLY_ORG, ORG_B, sandbox_seed

BASE = "http://sandbox/credly/v1/"
CLIENT_ID = "badgetui-oauth-app"
SECRET = "oauth-client-secret-7c1e"
KEY = "sandbox-credly-key"


def oauth_seed() -> dict:
    seed = sandbox_seed()
    orgs = seed["credly"]["organizations"]
    orgs[0]["oauth_applications"] = [{"client_id": CLIENT_ID, "client_secret": SECRET}]
    orgs.append({"id": ORG_B, "name": "Other Org", "api_key": "other-org-key",
                 "badge_templates": []})
    return seed


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    """Every emulator is new: no token cached by an earlier test may be offered to it."""
    SHARED_TOKENS.clear()
    yield
    SHARED_TOKENS.clear()


@pytest.fixture
def emu(clock) -> Emulator:
    return Emulator(oauth_seed(), clock=clock, rng_seed=4)


def requests(emulator: Emulator, endpoint: str) -> int:
    return emulator.counters()[endpoint]["requests"]


def oauth_client(emulator: Emulator, clock, *, secret: str = SECRET, org: str = CREDLY_ORG,
                 cache: TokenCache | None = None) -> CredlyClient:
    creds = OAuthCredentials(CLIENT_ID, secret, token_urls(BASE))
    return CredlyClient(BASE, org, oauth=creds, transport=emulator.transport(), clock=clock,
                        token_cache=cache, retries=0)


# -- where the token endpoint is ---------------------------------------------------------------
def test_token_urls_follow_the_api_base_documented_host_first():
    assert token_urls("https://api.credly.com/v1/") == (
        "https://www.credly.com/oauth/token", "https://api.credly.com/oauth/token")
    assert token_urls("https://sandbox-api.credly.com/v1/") == (
        "https://sandbox.credly.com/oauth/token", "https://sandbox-api.credly.com/oauth/token")
    assert token_urls("http://127.0.0.1:8123/credly/v1/") == (
        "http://127.0.0.1:8123/credly/oauth/token", "http://127.0.0.1:8123/oauth/token")
    assert token_urls(BASE, "https://auth.example/oauth/token") == (
        "https://auth.example/oauth/token",)


async def test_token_endpoint_on_the_api_host_only_is_found_by_the_fallback(emu, clock):
    emu.set_options({"credly_oauth_paths": "api"})
    async with oauth_client(emu, clock) as client:
        assert (await client.organization())["name"] == "Example Academy"
    assert requests(emu, "credly.oauth.token") == 2  # 404 on /credly/oauth/token, then 200


# -- caching, renewal, 401 ---------------------------------------------------------------------
async def test_one_token_request_serves_many_calls_and_clients(emu, clock):
    async with oauth_client(emu, clock) as first, oauth_client(emu, clock) as second:
        answers = await asyncio.gather(*[c.organization() for c in (first, second) * 10])
        templates = await first.templates()
    assert {a["name"] for a in answers} == {"Example Academy"}
    assert len(templates) == 5
    assert requests(emu, "credly.oauth.token") == 1
    assert requests(emu, "credly.organization") == 20  # no 401, no second try
    assert emu.state()["credly"]["oauth"]["tokens_issued"] == 1


async def test_token_renewed_shortly_before_it_expires(emu, clock):
    emu.set_options({"credly_oauth_expires_in": 600})
    async with oauth_client(emu, clock) as client:
        await client.organization()
        clock.advance(530)  # 70 s left: still used
        await client.organization()
        assert requests(emu, "credly.oauth.token") == 1
        clock.advance(20)  # 50 s left: inside the 60 s margin, renewed before any 401
        await client.organization()
        assert requests(emu, "credly.oauth.token") == 2
        clock.advance(600)  # the emulator killed the first token long ago
        assert (await client.organization())["id"] == CREDLY_ORG
    assert requests(emu, "credly.oauth.token") == 3
    assert requests(emu, "credly.organization") == 4  # never refused, never repeated


async def test_a_refused_token_is_replaced_once_and_the_call_repeated(emu, clock):
    async with oauth_client(emu, clock) as client:
        await client.organization()
        assert emu.sandbox.credly.oauth.revoke_all() == 1  # revoked early at Credly
        assert (await client.organization())["name"] == "Example Academy"
    assert requests(emu, "credly.oauth.token") == 2
    assert requests(emu, "credly.organization") == 3  # ok, 401, ok


async def test_no_loop_when_the_fresh_token_is_refused_too(emu, clock):
    # The application belongs to the first organization: every token is refused for ORG_B.
    async with oauth_client(emu, clock, org=ORG_B) as client:
        with pytest.raises(AuthError) as caught:
            await client.organization()
    assert caught.value.status == 401
    assert requests(emu, "credly.oauth.token") == 2
    assert requests(emu, "credly.organization") == 2
    assert SECRET not in str(caught.value) and "7c1e" in str(caught.value)


async def test_a_wrong_secret_is_an_auth_error_and_gets_no_token(emu, clock):
    async with oauth_client(emu, clock, secret="not-the-secret-0000") as client:
        with pytest.raises(AuthError) as caught:
            await client.organization()
    text = str(caught.value)
    assert "invalid_client" in text and "…0000" in text and "not-the-secret" not in text
    assert requests(emu, "credly.organization") == 0
    assert emu.state()["credly"]["oauth"]["tokens_issued"] == 0


# -- accounts with OAuth -----------------------------------------------------------------------
@pytest.fixture
def svc(db_url, clock, emu) -> Iterator[Services]:
    settings = Settings(db=db_url, credly_api_url=BASE,
                        accredible_api_url="http://sandbox/accredible/v1/", provider_timeout=2)
    services = Services.open(settings, clock=clock, transport=emu.transport())
    yield services
    services.close()


async def test_oauth_account_is_stored_masked_and_every_path_uses_bearer(svc, emu):
    view = await svc.accounts.add_credly(CREDLY_ORG, client_id=CLIENT_ID, client_secret=SECRET)
    assert (view.name, view.auth, view.client_id, view.client_secret, view.api_key) == (
        "Example Academy", "oauth", CLIENT_ID, "…7c1e", "")
    stored = ProviderAccount.get()
    assert (stored.client_id, stored.client_secret, stored.api_key) == (CLIENT_ID, SECRET, "")
    [result] = await svc.sync.sync(None)
    assert result.error == ""
    assert Template.select().count() == 5
    assert requests(emu, "credly.oauth.token") == 1  # add and sync share the token
    assert [k.expires_at for k in svc.accounts.key_status()] == [None]  # no key to expire
    assert SECRET not in "".join(a.detail for a in AuditLog.select())


async def test_a_wrong_client_secret_is_one_line_naming_the_account(svc):
    with pytest.raises(ServiceError) as caught:
        await svc.accounts.add_credly(CREDLY_ORG, client_id=CLIENT_ID,
                                      client_secret="wrong-secret-4321")
    text = str(caught.value)
    assert "\n" not in text and f"organization {CREDLY_ORG}" in text
    assert f"OAuth client {CLIENT_ID}" in text and "…4321" in text and "wrong-secret" not in text
    assert ProviderAccount.select().count() == 0


# -- rotation and expiry -----------------------------------------------------------------------
async def _status(emu: Emulator, key: str) -> int:
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as client:
        response = await client.get(f"organizations/{CREDLY_ORG}", auth=(key, ""))
        return response.status_code


async def test_rotate_stores_the_verified_key_with_credly_expiry_and_kills_the_old(svc, emu,
                                                                                clock):
    await svc.accounts.add_credly(CREDLY_ORG, KEY)
    ProviderAccount.update(paused_reason="Credly refused the key").execute()
    clock.advance(86400 * 3)
    rotation = await svc.accounts.rotate(CREDLY_ORG)
    stored = ProviderAccount.get()
    assert stored.api_key != KEY and stored.api_key.startswith("rot-")
    assert stored.paused_reason == ""
    [listed] = emu.state()["credly"]["organizations"][:1]
    assert listed["live_keys"] == ["…" + stored.api_key[-4:]]
    assert await _status(emu, KEY) == 401  # dead at once
    assert await _status(emu, stored.api_key) == 200
    assert rotation.expires_at == clock() + timedelta(days=180)
    assert not rotation.assumed
    [status] = svc.accounts.key_status()
    assert status.expires_at == rotation.expires_at and not status.assumed
    [entry] = [a for a in AuditLog.select() if a.action == "account.rotate"]
    assert stored.api_key not in entry.detail and stored.api_key[-4:] in entry.detail


async def test_a_grace_period_keeps_the_old_key_alive_until_it_ends(svc, emu, clock):
    emu.set_options({"credly_rotate_grace_s": 300})
    await svc.accounts.add_credly(CREDLY_ORG, KEY)
    await svc.accounts.rotate(CREDLY_ORG)
    assert await _status(emu, KEY) == 200
    clock.advance(301)
    assert await _status(emu, KEY) == 401


async def test_failed_verification_keeps_the_old_key_and_says_so(svc, emu):
    await svc.accounts.add_credly(CREDLY_ORG, KEY)
    emu.set_faults({"credly.organization": {"fail_next": [401]}})
    with pytest.raises(ServiceError) as caught:
        await svc.accounts.rotate(CREDLY_ORG)
    text = str(caught.value)
    assert "\n" not in text and "stays stored" in text and "…-key" in text
    assert ProviderAccount.get().api_key == KEY
    assert [a.action for a in AuditLog.select()][-1] == "account.rotate.failed"


async def test_no_rotation_endpoint_is_a_clear_refusal(svc, emu):
    emu.set_options({"credly_rotate_endpoint": False})
    await svc.accounts.add_credly(CREDLY_ORG, KEY)
    with pytest.raises(ServiceError, match=r"no key rotation.*--api-key-file"):
        await svc.accounts.rotate(CREDLY_ORG)
    assert ProviderAccount.get().api_key == KEY
    assert await _status(emu, KEY) == 200


async def test_expiry_comes_from_the_token_listing_not_an_assumed_180_days(db_url, clock):
    seed = oauth_seed()
    org = seed["credly"]["organizations"][0]
    org["key_created_at"] = (clock() - timedelta(days=30)).isoformat()
    org["key_expires_at"] = (clock() + timedelta(days=10)).isoformat()  # not created + 180
    emulator = Emulator(seed, clock=clock, rng_seed=4)
    settings = Settings(db=db_url, credly_api_url=BASE, provider_timeout=2)
    services = Services.open(settings, clock=clock, transport=emulator.transport())
    try:
        await services.accounts.add_credly(CREDLY_ORG, KEY)
        [status] = services.accounts.key_status()
        assert status.expires_at == clock() + timedelta(days=10) and not status.assumed
        assert "expires in 10 days" in status.warning
        # No listed expiry (e.g. a read-only listing): 180 days after creation, flagged.
        ProviderAccount.update(key_expires_at=None).execute()
        [status] = services.accounts.key_status()
        assert status.assumed and status.expires_at == clock() + timedelta(days=150)
        assert status.warning == ""
    finally:
        services.close()


# -- per-account API bases ---------------------------------------------------------------------
def test_regions_map_to_accredible_hosts():
    assert region_url("accredible", "eu", None) == "https://eu.api.accredible.com/v1/"
    assert region_url("accredible", "US", None) == "https://api.accredible.com/v1/"
    assert region_url("accredible", None, None) == ""
    with pytest.raises(ServiceError):
        region_url("credly", "eu", None)
    with pytest.raises(ServiceError):
        region_url("accredible", "eu", "https://x.example/v1/")


def test_two_accredible_accounts_on_two_bases(db_url, clock):
    first_seed, second_seed = sandbox_seed(groups=3), sandbox_seed(groups=2)
    first, second = Emulator(first_seed, rng_seed=1), Emulator(second_seed, rng_seed=2)
    (base_1, stop_1), (base_2, stop_2) = start_in_thread(first), start_in_thread(second)
    # The settings' base is dead: only each account's own base can work.
    settings = Settings(db=db_url, accredible_api_url="http://127.0.0.1:9/accredible/v1/",
                        provider_timeout=2)
    services = Services.open(settings, clock=clock)
    try:
        asyncio.run(services.accounts.add_accredible(
            "Example Accredible", "sandbox-accredible-key", api_url=f"{base_1}/accredible/v1/"))
        asyncio.run(services.accounts.add_accredible(
            "Second Accredible", "sandbox-accredible-key-2",
            api_url=f"{base_2}/accredible/v1/"))
        results = asyncio.run(services.sync.sync(None))
        assert [r.error for r in results] == ["", ""]
        by_account = {a.name: a.api_url for a in services.templates.accounts()}
        assert by_account == {"Example Accredible": f"{base_1}/accredible/v1/",
                              "Second Accredible": f"{base_2}/accredible/v1/"}
        groups = {(t.account, t.external_id) for t in services.templates.list()}
        assert groups == {("Example Accredible", "9001"), ("Example Accredible", "9002"),
                          ("Example Accredible", "9003"), ("Second Accredible", "9001")}
        for emulator in (first, second):
            counts = emulator.counters()
            assert (counts["accredible.groups.list"]["requests"]
                    + counts["accredible.groups.search"]["requests"]) >= 1
        assert first.counters()["accredible.issuer"]["requests"] == 1
        assert second.counters()["accredible.issuer"]["requests"] == 1
    finally:
        services.close()
        stop_1()
        stop_2()


def test_the_token_cache_is_keyed_by_secret_too():
    a = OAuthCredentials("id", "secret-1", ("http://x/oauth/token",))
    b = OAuthCredentials("id", "secret-2", ("http://x/oauth/token",))
    assert TokenCache.key(a) != TokenCache.key(b)
    assert "secret-1" not in repr(a)

