"""Provider clients against the emulator (in-process ASGI transport), plus the shared plumbing."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pickle
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from badgetui.providers.accredible import AccredibleClient, AccredibleGroup, v2_base
from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import (
    AuthError,
    DuplicateError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from badgetui.providers.http import extract_message, mask, parse_retry_after
from badgetui.sandbox import Emulator
from tests.conftest import CREDLY_ORG, FakeClock

CREDLY_URL = "http://sandbox/credly/v1/"
ACCREDIBLE_URL = "http://sandbox/accredible/v1/"
CREDLY_KEY = "credly-secret-token-9f8e7d6c5b4a-K7Q2"
OTHER_ORG = "0a0b0c0d-1111-4222-8333-444455556666"
OTHER_KEY = "credly-other-token-0123456789-Z9Y8"
ACCREDIBLE_KEY = "accredible-secret-key-abcdef0123-M3N4"
UNKNOWN_ORG = "ffffffff-ffff-4fff-8fff-ffffffffffff"

ACTIVE_TEMPLATES = 320
ARCHIVED_TEMPLATES = 25
GROUPS = 130
AWARD_TIME = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _uuid(prefix: int, n: int) -> str:
    return str(uuid.UUID(int=(prefix << 64) + n))


TEMPLATE_ACTIVE = _uuid(1, 0)
TEMPLATE_ARCHIVED = _uuid(2, 0)


def seed() -> dict[str, Any]:
    templates = [
        {"id": _uuid(1, i), "name": f"Active {i:03d}", "state": "active",
         "description": f"Active template {i}", "image_url": f"https://img.example/{i}.png"}
        for i in range(ACTIVE_TEMPLATES)
    ] + [
        {"id": _uuid(2, i), "name": f"Archived {i:03d}", "state": "archived",
         "description": "gone", "image_url": ""}
        for i in range(ARCHIVED_TEMPLATES)
    ]
    groups: list[dict[str, Any]] = [
        {"id": 9001, "name": "g-primary", "course_name": "Primary design",
         "course_description": "has a primary design", "primary_design_id": 77,
         "badge_design_id": 78, "certificate_design_id": 79},
        {"id": 9002, "name": "g-badge", "course_name": "Badge design",
         "course_description": "", "primary_design_id": None, "badge_design_id": 78,
         "certificate_design_id": 79},
        {"id": 9003, "name": "g-certificate", "course_name": "Certificate design",
         "course_description": "", "primary_design_id": None, "badge_design_id": None,
         "certificate_design_id": 79},
        {"id": 9004, "name": "g-none", "course_name": "No design", "course_description": "",
         "primary_design_id": None, "badge_design_id": None, "certificate_design_id": None},
    ]
    groups += [
        {"id": 10_000 + i, "name": f"g-{i}", "course_name": f"Group {i}",
         "course_description": f"Group {i}", "primary_design_id": 77}
        for i in range(GROUPS - len(groups))
    ]
    return {
        "credly": {"organizations": [
            {"id": CREDLY_ORG, "name": "Example Academy", "api_key": CREDLY_KEY,
             "badge_templates": templates},
            {"id": OTHER_ORG, "name": "Other Academy", "api_key": OTHER_KEY,
             "badge_templates": [{"id": _uuid(3, 0), "name": "Other", "state": "active",
                                  "description": "", "image_url": ""}]},
        ]},
        "accredible": {"accounts": [
            {"name": "Example Accredible", "api_key": ACCREDIBLE_KEY, "groups": groups,
             "designs": [
                 {"id": 77, "kind": "certificate",
                  "rasterized_content_url": "https://designs.example/77.png"},
                 {"id": 78, "kind": "badge",
                  "rasterized_content_url": "https://designs.example/78.png"},
                 {"id": 79, "kind": "certificate",
                  "rasterized_content_url": "https://designs.example/79.png"},
             ]},
            {"name": "Other Accredible", "api_key": "accredible-other-key-9999",
             "groups": [{"id": 9001, "name": "other", "course_name": "Same id, other account",
                         "primary_design_id": None}],
             "designs": []},
        ]},
    }


# -- transports and helpers ----------------------------------------------------------------


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests through to the emulator and keeps them, so tests see what was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method is None or r.method == method]

    def bodies(self, method: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == method]

    def sent(self, method: str) -> list[tuple[str, Any]]:
        """(path, JSON body or None) of each request with `method`."""
        return [(r.url.path, json.loads(r.content) if r.content else None)
                for r in self.requests if r.method == method]


class StripTotalPages(httpx.AsyncBaseTransport):
    """Removes `total_pages` from Credly list answers, forcing the next_page_url fallback."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        body = json.loads(content)
        body.get("metadata", {}).pop("total_pages", None)
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}
        return httpx.Response(response.status_code, headers=headers,
                              content=json.dumps(body).encode())


class Sleeps:
    """An injected sleep: records the waits instead of taking them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def assert_no_key(error: BaseException, *keys: str) -> None:
    text = " ".join([str(error), repr(error), getattr(error, "message", "")])
    for key in keys:
        assert key not in text
    assert "\n" not in str(error)


def counter(emu: Any, endpoint: str, field: str) -> int:
    return int(emu.counters()[endpoint][field])


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    return Emulator(seed(), clock=clock, rng_seed=0)


@pytest.fixture
def recorder(emu: Any) -> Recorder:
    return Recorder(emu.transport())


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def credly(recorder: Recorder, sleeps: Sleeps) -> AsyncIterator[CredlyClient]:
    async with CredlyClient(CREDLY_URL, CREDLY_ORG, CREDLY_KEY, transport=recorder,
                            sleep=sleeps) as client:
        yield client


@pytest.fixture
async def accredible(recorder: Recorder, sleeps: Sleeps) -> AsyncIterator[AccredibleClient]:
    async with AccredibleClient(ACCREDIBLE_URL, ACCREDIBLE_KEY, transport=recorder,
                                sleep=sleeps) as client:
        yield client


async def issue(client: CredlyClient, earner: str = "7", email: str = "ann@example.org",
                template: str = TEMPLATE_ACTIVE) -> Any:
    return await client.issue(template_id=template, email=email, first_name="Ann",
                              last_name="Lee", issued_at=AWARD_TIME, earner_id=earner)


# -- Credly: account, auth -----------------------------------------------------------------


async def test_credly_organization_name_and_request_shape(
    credly: CredlyClient, recorder: Recorder
) -> None:
    org = await credly.organization()
    assert org["name"] == "Example Academy"
    assert org["id"] == CREDLY_ORG
    sent = recorder.requests[0]
    assert sent.url.path == f"/credly/v1/organizations/{CREDLY_ORG}"
    token = base64.b64encode(f"{CREDLY_KEY}:".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {token}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/json"


async def test_credly_unknown_organization_is_permanent(emu: Any) -> None:
    async with CredlyClient(CREDLY_URL, UNKNOWN_ORG, CREDLY_KEY,
                            transport=emu.transport()) as client:
        with pytest.raises(PermanentError) as caught:
            await client.organization()
    assert caught.value.status == 404
    assert caught.value.message == "unknown organization"
    assert caught.value.kind == "permanent"
    assert str(caught.value) == "Credly: 404 unknown organization"


async def test_credly_wrong_key_is_auth_error_without_the_key(
    emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "totally-wrong-credly-token-WXYZ"
    caplog.set_level(logging.DEBUG)
    client = CredlyClient(CREDLY_URL, CREDLY_ORG, wrong, transport=emu.transport())
    async with client:
        with pytest.raises(AuthError) as caught:
            await client.organization()
    error = caught.value
    assert error.status == 401
    assert error.kind == "auth"
    assert error.retry_after is None
    assert str(error) == "Credly: 401 Unauthorized (check the API key ending …WXYZ)"
    assert_no_key(error, wrong)
    assert wrong not in repr(client)
    assert "…WXYZ" in repr(client)
    assert wrong not in caplog.text


async def test_credly_other_organizations_key_is_refused(emu: Any) -> None:
    async with CredlyClient(CREDLY_URL, CREDLY_ORG, OTHER_KEY, transport=emu.transport()) as c:
        with pytest.raises(AuthError) as caught:
            await c.organization()
    assert_no_key(caught.value, OTHER_KEY)


async def test_credly_key_older_than_180_days_is_refused(emu: Any, credly: CredlyClient) -> None:
    await credly.organization()
    emu.advance_clock(181 * 86400)
    with pytest.raises(AuthError):
        await credly.organization()


async def test_credly_authorization_tokens_carry_expiry(credly: CredlyClient) -> None:
    tokens = await credly.authorization_tokens()
    mine = [t for t in tokens if t.get("token") == CREDLY_KEY]
    assert len(mine) == 1
    created = datetime.fromisoformat(mine[0]["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(mine[0]["expires_at"].replace("Z", "+00:00"))
    assert expires - created == timedelta(days=180)


# -- Credly: templates and paging ----------------------------------------------------------


async def test_credly_templates_page_through_seven_pages(
    credly: CredlyClient, recorder: Recorder
) -> None:
    progress: list[tuple[int, int]] = []
    found = await credly.templates(on_page=lambda done, total: progress.append((done, total)))
    assert len(found) == ACTIVE_TEMPLATES
    assert {t.id for t in found} == {_uuid(1, i) for i in range(ACTIVE_TEMPLATES)}
    assert {t.state for t in found} == {"active"}
    assert progress[0] == (1, 7)
    assert [done for done, _ in progress] == [1, 2, 3, 4, 5, 6, 7]
    assert {total for _, total in progress} == {7}
    pages = sorted(int(r.url.params["page"]) for r in recorder.requests)
    assert pages == [1, 2, 3, 4, 5, 6, 7]
    assert all(r.url.params["filter"] == "state::active" for r in recorder.requests)
    first = next(t for t in found if t.id == TEMPLATE_ACTIVE)
    assert (first.name, first.description, first.image_url) == (
        "Active 000", "Active template 0", "https://img.example/0.png")


async def test_credly_archived_templates_on_request(credly: CredlyClient) -> None:
    found = await credly.templates("archived")
    assert len(found) == ARCHIVED_TEMPLATES
    assert {t.state for t in found} == {"archived"}


async def test_credly_templates_follow_next_page_url_without_total(
    emu: Any, sleeps: Sleeps
) -> None:
    strip = StripTotalPages(emu.transport())
    progress: list[tuple[int, int]] = []
    async with CredlyClient(CREDLY_URL, CREDLY_ORG, CREDLY_KEY, transport=strip,
                            sleep=sleeps) as client:
        found = await client.templates(on_page=lambda d, t: progress.append((d, t)))
    assert len(found) == ACTIVE_TEMPLATES
    assert len(strip.urls) == 7
    assert all(u.startswith("http://sandbox/credly/v1/") for u in strip.urls)
    assert progress[-1] == (7, 7)
    assert [d for d, _ in progress] == list(range(1, 8))


async def test_credly_one_template(credly: CredlyClient) -> None:
    template = await credly.template(TEMPLATE_ACTIVE)
    assert template.id == TEMPLATE_ACTIVE
    assert template.name == "Active 000"
    assert template.state == "active"
    with pytest.raises(PermanentError) as caught:
        await credly.template(_uuid(9, 9))
    assert caught.value.status == 404


async def test_credly_reads_retry_through_transient_5xx(
    emu: Any, credly: CredlyClient, sleeps: Sleeps
) -> None:
    emu.set_faults({"credly.templates.list": {"fail_next": [503, 500]}})
    found = await credly.templates()
    assert len(found) == ACTIVE_TEMPLATES
    assert len(sleeps.waits) == 2


async def test_credly_read_retry_honours_retry_after(
    emu: Any, credly: CredlyClient, sleeps: Sleeps
) -> None:
    emu.set_faults({"credly.templates.list": {"fail_next": [429], "retry_after": 3}})
    found = await credly.templates()
    assert len(found) == ACTIVE_TEMPLATES
    assert sleeps.waits == [3.0]


async def test_credly_reads_give_up_after_a_few_retries(
    emu: Any, credly: CredlyClient, sleeps: Sleeps, recorder: Recorder
) -> None:
    emu.set_faults({"credly.templates.list": {"rate_5xx": 1.0, "statuses": [502]}})
    with pytest.raises(RetryableError) as caught:
        await credly.templates()
    assert caught.value.status == 502
    assert len(sleeps.waits) == 3
    assert len(recorder.requests) == 4


async def test_credly_paging_concurrency_stays_within_max_connections(emu: Any) -> None:
    emu.set_faults({"credly.templates.list": {"latency_ms": 40}})
    async with CredlyClient(CREDLY_URL, CREDLY_ORG, CREDLY_KEY, transport=emu.transport(),
                            max_connections=3) as client:
        found = await client.templates()
    assert len(found) == ACTIVE_TEMPLATES
    most = counter(emu, "credly.templates.list", "max_in_flight")
    assert 2 <= most <= 3


# -- Credly: issue, find, revoke -------------------------------------------------------------


async def test_credly_issue_find_badge_revoke(
    emu: Any, credly: CredlyClient, recorder: Recorder
) -> None:
    badge = await issue(credly)
    assert badge.state == "pending"
    assert badge.badge_template_id == TEMPLATE_ACTIVE
    assert badge.recipient_email == "ann@example.org"
    assert badge.issuer_earner_id == "7"
    (sent,) = recorder.bodies("POST")
    assert sent["issued_at"] == "2026-11-01 09:00:00 +0000"
    assert sent["issuer_earner_id"] == "7"
    assert sent["issued_to_first_name"] == "Ann"
    assert sent["issued_to_last_name"] == "Lee"
    (stored,) = emu.state()["credly"]["badges"]
    assert stored["id"] == badge.id
    assert stored["issuer_earner_id"] == "7"

    found = await credly.find_badges(earner_id="7", template_id=TEMPLATE_ACTIVE)
    assert [b.id for b in found] == [badge.id]
    assert await credly.find_badges(earner_id="8", template_id=TEMPLATE_ACTIVE) == []
    assert (await credly.badge(badge.id)).state == "pending"

    revoked = await credly.revoke(badge.id, "no longer passing")
    assert revoked.id == badge.id
    assert revoked.state == "revoked"
    (put,) = recorder.bodies("PUT")
    assert put == {"reason": "no longer passing", "suppress_revoke_notification_email": False}
    assert emu.state()["credly"]["badges"][0]["state"] == "revoked"
    assert [b.state for b in await credly.find_badges(earner_id="7",
                                                      template_id=TEMPLATE_ACTIVE)] == ["revoked"]

    with pytest.raises(PermanentError) as caught:
        await credly.revoke(badge.id, "again")
    assert caught.value.status == 422
    assert not isinstance(caught.value, DuplicateError)


async def test_credly_naive_issued_at_is_taken_as_utc(credly: CredlyClient,
                                                      recorder: Recorder) -> None:
    await credly.issue(template_id=TEMPLATE_ACTIVE, email="bo@example.org", first_name="Bo",
                       last_name="Ng", issued_at=datetime(2026, 1, 2, 3, 4, 5), earner_id="9")
    assert recorder.bodies("POST")[0]["issued_at"] == "2026-01-02 03:04:05 +0000"


async def test_credly_duplicate_issue(credly: CredlyClient) -> None:
    await issue(credly)
    with pytest.raises(DuplicateError) as caught:
        await issue(credly, email="other@example.org")  # same issuer_earner_id
    assert caught.value.status == 422
    assert "already has this badge" in caught.value.message
    assert isinstance(caught.value, PermanentError)


async def test_credly_issue_refusals_keep_the_provider_message(credly: CredlyClient) -> None:
    with pytest.raises(PermanentError) as caught:
        await issue(credly, template=TEMPLATE_ARCHIVED)
    assert caught.value.status == 422
    assert caught.value.message.startswith("Validation failed")
    assert not isinstance(caught.value, DuplicateError)
    with pytest.raises(PermanentError) as caught:
        await issue(credly, template=_uuid(9, 9))
    assert caught.value.status == 404
    assert caught.value.message == "Not found"
    with pytest.raises(PermanentError) as caught:
        await credly.issue(template_id=TEMPLATE_ACTIVE, email="", first_name="A",
                           last_name="B", issued_at=AWARD_TIME, earner_id="1")
    assert caught.value.status == 422
    assert "can't be blank" in caught.value.message
    with pytest.raises(PermanentError) as caught:
        await credly.revoke(_uuid(9, 9), "x")
    assert caught.value.status == 404


async def test_credly_429_with_retry_after_is_retryable_and_not_retried(
    emu: Any, credly: CredlyClient, recorder: Recorder
) -> None:
    emu.set_faults({"credly.issue": {"rate_429": 1.0, "retry_after": 2, "phase": "before"}})
    with pytest.raises(RetryableError) as caught:
        await issue(credly)
    assert caught.value.status == 429
    assert caught.value.retry_after == 2.0
    assert caught.value.kind == "retryable"
    assert len(recorder.paths("POST")) == 1
    assert emu.state()["credly"]["badges"] == []


async def test_credly_500_after_commit_is_retryable_then_found(
    emu: Any, credly: CredlyClient, recorder: Recorder
) -> None:
    emu.set_faults({"credly.issue": {"rate_5xx": 1.0, "statuses": [500], "phase": "after"}})
    with pytest.raises(RetryableError) as caught:
        await issue(credly)
    assert caught.value.status == 500
    assert caught.value.retry_after is None
    assert len(recorder.paths("POST")) == 1  # never retried inside the client
    emu.set_faults({})
    (found,) = await credly.find_badges(earner_id="7", template_id=TEMPLATE_ACTIVE)
    assert found.state == "pending"


async def test_credly_hang_is_a_timeout(emu: Any) -> None:
    emu.set_faults({"credly.organization": {"rate_hang": 1.0, "hang_s": 5}})
    async with CredlyClient(CREDLY_URL, CREDLY_ORG, CREDLY_KEY, transport=emu.transport(),
                            timeout=0.5, retries=0) as client:
        started = time.monotonic()
        with pytest.raises(RetryableError) as caught:
            await client.organization()
    assert time.monotonic() - started < 2.5
    assert caught.value.status is None
    assert str(caught.value) == "Credly: no answer within 0.5 s"


async def test_credly_event_holds_the_full_template(emu: Any, credly: CredlyClient) -> None:
    recorded = emu.credly_template(CREDLY_ORG, "change", {"id": TEMPLATE_ACTIVE,
                                                          "name": "Renamed"})
    event = await credly.event(recorded["id"])
    assert event["id"] == recorded["id"]
    assert event["event_type"] == "badge_template.changed"
    assert event["badge_template"]["owner"]["id"] == CREDLY_ORG
    assert event["badge_template"]["name"] == "Renamed"
    with pytest.raises(PermanentError):
        await credly.event(_uuid(9, 9))


# -- Accredible -----------------------------------------------------------------------------


async def test_accredible_issuer_and_auth_header(
    accredible: AccredibleClient, recorder: Recorder
) -> None:
    issuer = await accredible.issuer()
    assert issuer.get("name")
    sent = recorder.requests[0]
    assert sent.url.path == "/accredible/v1/issuer/details"
    assert sent.headers["Authorization"] == f"Token token={ACCREDIBLE_KEY}"


async def test_accredible_wrong_key_is_auth_error_without_the_key(emu: Any) -> None:
    wrong = "wrong-accredible-key-0000-QRST"
    client = AccredibleClient(ACCREDIBLE_URL, wrong, transport=emu.transport())
    async with client:
        with pytest.raises(AuthError) as caught:
            await client.issuer()
    assert caught.value.status == 401
    assert caught.value.message == "HTTP Token: Access denied."
    assert str(caught.value) == (
        "Accredible: 401 HTTP Token: Access denied. (check the API key ending …QRST)")
    assert_no_key(caught.value, wrong)
    assert wrong not in repr(client)


async def test_accredible_groups_page_through_three_pages(
    accredible: AccredibleClient, recorder: Recorder
) -> None:
    progress: list[tuple[int, int]] = []
    groups = await accredible.groups(on_page=lambda d, t: progress.append((d, t)))
    assert len(groups) == GROUPS
    assert len({g.id for g in groups}) == GROUPS
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert {r.url.path for r in recorder.requests} == {"/accredible/v1/issuer/groups/search"}
    bodies = recorder.bodies("POST")
    assert sorted(b["page"] for b in bodies) == [1, 2, 3]
    assert {b["page_size"] for b in bodies} == {50}
    by_id = {g.id: g for g in groups}
    assert by_id[9001] == AccredibleGroup(9001, "g-primary", "Primary design",
                                          "has a primary design", 77)


async def test_accredible_groups_retry_through_transient_5xx(
    emu: Any, accredible: AccredibleClient, sleeps: Sleeps
) -> None:
    emu.set_faults({"accredible.groups.search": {"fail_next": [500]}})
    assert len(await accredible.groups()) == GROUPS
    assert len(sleeps.waits) == 1


async def test_accredible_design_fallback(
    accredible: AccredibleClient, recorder: Recorder
) -> None:
    by_id = {g.id: g for g in await accredible.groups()}
    assert [by_id[i].design_id for i in (9001, 9002, 9003, 9004)] == [77, 78, 79, None]
    before = len(recorder.requests)
    assert await accredible.design_image(None) is None
    assert len(recorder.requests) == before  # no request without a design
    urls = [await accredible.design_image(by_id[i].design_id) for i in (9001, 9002, 9003)]
    assert urls == [f"https://designs.example/{n}.png" for n in (77, 78, 79)]
    assert recorder.paths()[before:] == [f"/accredible/v1/designs/{n}" for n in (77, 78, 79)]
    assert "/accredible/v1/designs/None" not in recorder.paths()


async def test_accredible_create_expire_search_credential(
    emu: Any, accredible: AccredibleClient, recorder: Recorder
) -> None:
    created = await accredible.create_credential(
        group_id=9001, name="Ann Lee", email="ann@example.org", recipient_id="7",
        issued_on=date(2026, 11, 1))
    assert isinstance(created.id, int)
    assert (created.group_id, created.email, created.name) == (9001, "ann@example.org",
                                                                 "Ann Lee")
    assert created.expired_on is None
    assert created.recipient_id == "7"
    (sent,) = recorder.bodies("POST")
    assert sent == {"credential": {"recipient": {"name": "Ann Lee", "email": "ann@example.org",
                                                 "id": "7"},
                                   "group_id": 9001, "issued_on": "2026-11-01"}}

    expired = await accredible.expire(created.id, date(2026, 11, 2))
    assert expired.id == created.id
    assert expired.expired_on == "2026-11-02"
    (put,) = recorder.bodies("PUT")
    assert put == {"credential": {"expired_on": "2026-11-02"}}
    (stored,) = emu.state()["accredible"]["credentials"]
    assert stored["expired_on"] == "2026-11-02"

    (found,) = await accredible.search(email="ann@example.org", group_id=9001)
    assert (found.id, found.group_id, found.email) == (created.id, 9001, "ann@example.org")
    assert found.expired_on == "2026-11-02"
    assert recorder.requests[-1].url.path == "/accredible/v2/credentials/search"
    assert await accredible.search(email="ann@example.org", group_id=9002) == []
    assert await accredible.search(email="bob@example.org", group_id=9001) == []

    restored = await accredible.expire(created.id, None)
    assert restored.expired_on is None
    assert recorder.bodies("PUT")[-1] == {"credential": {"expired_on": None}}
    fetched = await accredible.credential(created.id)
    assert (fetched.id, fetched.expired_on, fetched.email) == (created.id, None,
                                                                "ann@example.org")


async def test_accredible_duplicate_create(accredible: AccredibleClient) -> None:
    args: dict[str, Any] = {"group_id": 9001, "name": "Ann", "email": "ann@example.org",
                            "recipient_id": "7", "issued_on": date(2026, 11, 1)}
    await accredible.create_credential(**args)
    with pytest.raises(DuplicateError) as caught:
        await accredible.create_credential(**args)
    assert caught.value.status == 422
    assert "has already been taken" in caught.value.message


async def test_accredible_refusals_keep_the_provider_message(
    accredible: AccredibleClient,
) -> None:
    with pytest.raises(PermanentError) as caught:
        await accredible.credential(987654)
    assert caught.value.status == 404
    assert caught.value.message == "Doesn't exist"
    with pytest.raises(PermanentError) as caught:
        await accredible.create_credential(group_id=424242, name="A", email="a@example.org",
                                           recipient_id="1", issued_on=date(2026, 11, 1))
    assert caught.value.status == 422
    assert caught.value.message == "Invalid Group"
    with pytest.raises(PermanentError) as caught:
        await accredible.create_credential(group_id=9001, name="A", email="",
                                           recipient_id="1", issued_on=date(2026, 11, 1))
    assert caught.value.status == 422
    assert caught.value.message == "recipient.email can't be blank"
    assert not isinstance(caught.value, DuplicateError)


async def test_accredible_create_fault_is_retryable_and_not_retried(
    emu: Any, accredible: AccredibleClient, recorder: Recorder
) -> None:
    emu.set_faults({"accredible.credentials.create": {"rate_429": 1.0, "retry_after": 7}})
    with pytest.raises(RetryableError) as caught:
        await accredible.create_credential(group_id=9001, name="A", email="a@example.org",
                                           recipient_id="1", issued_on=date(2026, 11, 1))
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
    assert len(recorder.paths("POST")) == 1


async def test_accredible_hang_is_a_timeout(emu: Any) -> None:
    emu.set_faults({"accredible.credentials.update": {"rate_hang": 1.0, "hang_s": 5}})
    async with AccredibleClient(ACCREDIBLE_URL, ACCREDIBLE_KEY, transport=emu.transport(),
                                timeout=0.5) as client:
        with pytest.raises(RetryableError) as caught:
            await client.expire(1, date(2026, 11, 2))
    assert caught.value.status is None


async def test_accredible_paging_concurrency_stays_within_max_connections(emu: Any) -> None:
    emu.set_faults({"accredible.groups.search": {"latency_ms": 40}})
    async with AccredibleClient(ACCREDIBLE_URL, ACCREDIBLE_KEY, transport=emu.transport(),
                                max_connections=1) as client:
        assert len(await client.groups()) == GROUPS
    assert counter(emu, "accredible.groups.search", "max_in_flight") == 1


# -- shared plumbing (no emulator needed, but kept with the clients) --------------------------


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Sun, 01 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 01 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None


@pytest.mark.parametrize(("body", "expected"), [
    ({"data": {"message": "Validation failed: User already has this badge"}},
     "Validation failed: User already has this badge"),
    ({"errors": "Invalid Group"}, "Invalid Group"),
    ({"errors": {"recipient.email": ["can't be blank"], "group_id": ["is bad", "is odd"]}},
     "recipient.email can't be blank; group_id is bad, is odd"),
    ({"success": False, "data": "Group does not exist"}, "Group does not exist"),
    ({"error": "Not found"}, "Not found"),
    ({"code": 400, "message": "bad query", "status": "invalid_search_query", "errors": {}},
     "bad query"),
    ("HTTP Token: Access denied.", "HTTP Token: Access denied."),
    ("<html>\n<body>\n  Bad   gateway\n</body></html>", "<html> <body> Bad gateway </body></html>"),
    ("", "Bad Gateway"),
    ({"unrelated": 1}, "Bad Gateway"),
])
def test_extract_message_shapes(body: Any, expected: str) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.Response(502, content=content.encode())
    assert extract_message(response) == expected


def test_long_messages_are_cut_to_one_line() -> None:
    response = httpx.Response(500, content=("x" * 1000 + "\n" + "y").encode())
    message = extract_message(response)
    assert len(message) <= 200
    assert "\n" not in message


def test_mask_and_error_pickling() -> None:
    assert mask("abcdefgh1234") == "…1234"
    assert mask("abc") == "…***"
    error = RetryableError("Too Many Requests", status=429, retry_after=2.0, provider="Credly")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.status, copy.retry_after, str(copy)) == (
        RetryableError, 429, 2.0, "Credly: 429 Too Many Requests")
    plain = PermanentError("refused", status=422)
    assert str(plain) == "refused"
    assert isinstance(DuplicateError("x"), PermanentError)
    assert isinstance(plain, ProviderError)


def test_v2_base_is_derived_from_v1() -> None:
    assert v2_base("https://api.accredible.com/v1/") == "https://api.accredible.com/v2/"
    assert v2_base("http://127.0.0.1:8000/accredible/v1") == "http://127.0.0.1:8000/accredible/v2/"


async def test_connection_errors_are_retryable_without_status() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    async with CredlyClient(CREDLY_URL, CREDLY_ORG, CREDLY_KEY,
                            transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(RetryableError) as caught:
            await client.organization()
    assert caught.value.status is None
    assert "Connection refused" in caught.value.message
    assert_no_key(caught.value, CREDLY_KEY)


async def test_retry_after_as_http_date_from_a_response() -> None:
    def throttle(request: httpx.Request) -> httpx.Response:
        later = datetime.now(UTC) + timedelta(seconds=120)
        return httpx.Response(503, headers={"Retry-After": later.strftime(
            "%a, %d %b %Y %H:%M:%S GMT")}, json={"errors": "Internal server error"})

    async with AccredibleClient(ACCREDIBLE_URL, ACCREDIBLE_KEY,
                                transport=httpx.MockTransport(throttle)) as client:
        with pytest.raises(RetryableError) as caught:
            await client.issuer()
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120
    assert caught.value.message == "Internal server error"
