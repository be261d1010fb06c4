"""The provider emulator (providers.md §4), in-process over an ASGI transport and over loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from badgetui.sandbox import Emulator, demo_seed, load_seed
from badgetui.sandbox import accredible as accredible_module
from badgetui.sandbox import credly as credly_module
from badgetui.sandbox import credly_oauth as credly_oauth_module
from badgetui.sandbox.faults import ENDPOINTS
from badgetui.sandbox.server import start_in_thread

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"
OTHER_ORG = "9d2f1b3c-0000-4000-8000-000000000002"
CKEY = "sandbox-credly-key"
OTHER_CKEY = "other-credly-key"
AKEY = "sandbox-accredible-key"
AKEY2 = "sandbox-accredible-key-2"
BASE = "http://sandbox.test"
CREDLY = f"/credly/v1/organizations/{ORG}"
TPL_ACTIVE = "00000000-0000-4000-8000-000000000001"
TPL_ARCHIVED = "00000000-0000-4000-8000-000000000002"
TPL_DUPES = "00000000-0000-4000-8000-000000000003"
OTHER_TPL = "00000000-0000-4000-8000-000000000099"


def basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


CH = basic(f"{CKEY}:")
AH = {"Authorization": f"Token token={AKEY}"}
AH2 = {"Authorization": f"Token token={AKEY2}"}


def template(tid: str, name: str, state: str = "active", **extra: Any) -> dict[str, Any]:
    return {"id": tid, "name": name, "state": state, "description": f"About {name}",
            "image_url": f"https://img.example.org/{tid}.png", **extra}


def seed(*, credly_templates: int = 0, groups: int = 0) -> dict[str, Any]:
    """Small named fixtures plus optional bulk templates and groups for paging."""
    templates = [template(TPL_ACTIVE, "Archery"), template(TPL_ARCHIVED, "Old", "archived"),
                 template(TPL_DUPES, "Attendance", allow_duplicate_badges=True)]
    templates += [template(f"10000000-0000-4000-8000-{n:012d}", f"Bulk {n:03d}",
                           "archived" if n % 31 == 0 else "active")
                  for n in range(1, credly_templates + 1)]
    main_groups = [
        {"id": 9001, "name": "intro", "course_name": "Intro", "course_description": "d",
         "primary_design_id": 77},
        {"id": 9002, "name": "dupes", "course_name": "Dupes", "course_description": "d",
         "primary_design_id": None, "badge_design_id": 78, "allow_duplicate_credentials": True},
    ]
    main_groups += [{"id": 10_000 + n, "name": f"bulk-{n}", "course_name": f"Bulk {n}",
                     "course_description": "", "primary_design_id": None}
                    for n in range(1, groups + 1)]
    return {
        "credly": {"organizations": [
            {"id": ORG, "name": "Example Academy", "api_key": CKEY, "badge_templates": templates},
            {"id": OTHER_ORG, "name": "Other Org", "api_key": OTHER_CKEY,
             "key_created_at": "2026-06-01T00:00:00Z",
             "badge_templates": [template(OTHER_TPL, "Foreign")]},
        ]},
        "accredible": {"accounts": [
            {"name": "Main", "api_key": AKEY, "groups": main_groups,
             "designs": [{"id": 77, "rasterized_content_url": "https://img.example.org/77.png"},
                         {"id": 78, "rasterized_content_url": "https://img.example.org/78.png"}]},
            {"name": "Second", "api_key": AKEY2,
             "groups": [{"id": 9001, "name": "shared", "course_name": "Shared id",
                         "course_description": "", "primary_design_id": 55}],
             "designs": [{"id": 55, "rasterized_content_url": "https://img.example.org/55.png"}]},
        ]},
    }


def issue_body(email: str = "ann@example.org", earner: str | None = "u-1",
               tid: str = TPL_ACTIVE, **extra: Any) -> dict[str, Any]:
    body = {"recipient_email": email, "issued_to_first_name": "Ann",
            "issued_to_last_name": "Lee", "badge_template_id": tid,
            "issued_at": "2026-11-01 09:41:00 -0500", **extra}
    if earner is not None:
        body["issuer_earner_id"] = earner
    return body


def credential_body(email: str = "bob@example.org", group: int = 9001,
                    **extra: Any) -> dict[str, Any]:
    return {"credential": {"recipient": {"name": "Bob", "email": email, "id": "u-2"},
                           "group_id": group, **extra}}


@pytest.fixture
def emu() -> Emulator:
    return Emulator(seed(), clock=lambda: NOW, rng_seed=3)


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as c:
        yield c


@pytest.fixture
def live(emu: Emulator) -> Iterator[str]:
    url, stop = start_in_thread(emu)
    try:
        yield url
    finally:
        stop()


# --- seed --------------------------------------------------------------------------------------


def test_demo_seed_shape_and_load_seed(tmp_path: Path) -> None:
    demo = demo_seed()
    (org,) = demo["credly"]["organizations"]
    states = [t["state"] for t in org["badge_templates"]]
    assert states.count("active") == 12 and states.count("archived") == 1
    first, second = demo["accredible"]["accounts"]
    shared = {g["id"] for g in first["groups"]} & {g["id"] for g in second["groups"]}
    assert shared == {9001}
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed()), encoding="utf-8")
    assert load_seed(path) == seed()
    path.write_text('{"credly": {"organizations": [{"name": "no id"}]}}', encoding="utf-8")
    with pytest.raises(ValueError, match="needs id and api_key"):
        load_seed(path)


async def test_demo_emulator_serves_the_demo_seed() -> None:
    demo = Emulator(clock=lambda: NOW)
    async with httpx.AsyncClient(transport=demo.transport(), base_url=BASE) as c:
        r = await c.get(f"{CREDLY}/badge_templates", params={"filter": "state::active"},
                        headers=basic(f"{CKEY}:"))
        assert r.json()["metadata"]["total_count"] == 12
        r = await c.get("/accredible/v1/issuer/groups/9001", headers=AH2)
        assert r.json()["group"]["course_name"] == "Partner Onboarding"


# --- Credly auth -------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    basic(f"{CKEY}:"), basic(CKEY), basic(f"{CKEY}|"), basic(f"{CKEY}|extra"),
    {"Authorization": f"Bearer {CKEY}"},
])
async def test_credly_auth_forms(client: httpx.AsyncClient, header: dict[str, str]) -> None:
    r = await client.get(CREDLY, headers=header)
    assert r.status_code == 200
    assert r.json() == {"data": r.json()["data"], "metadata": {}}
    assert r.json()["data"]["name"] == "Example Academy"
    assert r.json()["data"]["id"] == ORG


@pytest.mark.parametrize("header", [
    {}, basic("wrong:"), {"Authorization": f"Token token={CKEY}"},
    {"Authorization": "Basic !!!notbase64"}, basic(f"{OTHER_CKEY}:"),
])
async def test_credly_refuses_missing_wrong_and_foreign_tokens(
        client: httpx.AsyncClient, header: dict[str, str]) -> None:
    r = await client.get(f"{CREDLY}/badge_templates", headers=header)
    assert r.status_code == 401
    assert r.json() == {"data": {"message": "Unauthorized"}}


async def test_credly_unknown_organization_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/credly/v1/organizations/00000000-0000-4000-8000-00000000dead",
                         headers=CH)
    assert r.status_code == 404
    assert r.json() == {"data": {"message": "Not found"}}


async def test_credly_key_expires_after_180_days(emu: Emulator,
                                                 client: httpx.AsyncClient) -> None:
    r = await client.get(f"{CREDLY}/authorization_tokens", headers=CH)
    (key,) = r.json()["data"]
    assert key["token"] == CKEY and key["owner_id"] == ORG
    assert key["created_at"] == "2026-11-01T12:00:00.000Z"
    assert key["expires_at"] == "2027-04-30T12:00:00.000Z"  # + 180 days
    other = await client.get(f"/credly/v1/organizations/{OTHER_ORG}/authorization_tokens/",
                             headers=basic(OTHER_CKEY))
    assert other.json()["data"][0]["expires_at"] == "2026-11-28T00:00:00.000Z"
    emu.advance_clock(179 * 86400)
    assert (await client.get(CREDLY, headers=CH)).status_code == 200
    assert (await client.get(f"/credly/v1/organizations/{OTHER_ORG}",
                             headers=basic(OTHER_CKEY))).status_code == 401
    emu.advance_clock(2 * 86400)
    r = await client.get(CREDLY, headers=CH)
    assert r.status_code == 401 and r.json() == {"data": {"message": "Unauthorized"}}
    emu.reset()
    assert (await client.get(CREDLY, headers=CH)).status_code == 200


# --- Credly paging and filters -----------------------------------------------------------------


async def test_credly_template_paging_seven_pages_with_absolute_urls() -> None:
    emu = Emulator(seed(credly_templates=320), clock=lambda: NOW)
    active = [t["id"] for t in seed(credly_templates=320)["credly"]["organizations"][0][
        "badge_templates"] if t["state"] == "active"]
    assert len(active) == 312  # 7 pages of 50, the last with 12
    seen: list[str] = []
    async with httpx.AsyncClient(transport=emu.transport(),
                                 base_url="http://credly.example:8123") as c:
        url: str | None = f"{CREDLY}/badge_templates?filter=state::active&sort=name"
        pages = 0
        while url is not None:
            r = await c.get(url, headers=CH)
            body = r.json()
            pages += 1
            meta = body["metadata"]
            assert meta["current_page"] == pages and meta["total_pages"] == 7
            assert meta["total_count"] == 312 and meta["per"] == 50
            assert meta["count"] == len(body["data"]) == (12 if pages == 7 else 50)
            seen += [t["id"] for t in body["data"]]
            url = meta["next_page_url"]
            if url is not None:
                parts = urlsplit(url)
                assert (parts.scheme, parts.netloc) == ("http", "credly.example:8123")
                query = parse_qs(parts.query)
                assert query["filter"] == ["state::active"] and query["sort"] == ["name"]
                assert query["page"] == [str(pages + 1)]
            if pages > 1:
                assert parse_qs(urlsplit(meta["previous_page_url"]).query)["page"] == [
                    str(pages - 1)]
            else:
                assert meta["previous_page_url"] is None
        assert pages == 7
        assert sorted(seen) == sorted(active) and len(set(seen)) == 312
        past = (await c.get(f"{CREDLY}/badge_templates?filter=state::active&page=9",
                            headers=CH)).json()
        assert past["data"] == [] and past["metadata"]["next_page_url"] is None
        assert past["metadata"]["count"] == 0 and past["metadata"]["total_count"] == 312
        capped = (await c.get(f"{CREDLY}/badge_templates?per=500", headers=CH)).json()
        assert capped["metadata"]["per"] == 100 and len(capped["data"]) == 100
        assert capped["metadata"]["total_pages"] == 4  # 323 templates
        small = (await c.get(f"{CREDLY}/badge_templates?per=20&page=2", headers=CH)).json()
        assert small["metadata"]["per"] == 20 and small["metadata"]["current_page"] == 2
        again = await c.get(f"{CREDLY}/badge_templates?page=1&per=10&page=3&filter=x::y"
                            "&filter=state::archived", headers=CH)
        meta = again.json()["metadata"]
        assert again.status_code == 200 and meta["current_page"] == 3 and meta["per"] == 10
        assert meta["total_count"] == 11  # 10 bulk archived + "Old"
        assert parse_qs(urlsplit(meta["previous_page_url"]).query) == {
            "page": ["2"], "per": ["10"], "filter": ["state::archived"]}


async def test_credly_sort_descending(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{CREDLY}/badge_templates", params={"sort": "-name"}, headers=CH)
    assert [t["name"] for t in r.json()["data"]] == ["Old", "Attendance", "Archery"]


@pytest.mark.parametrize("path", [
    "", "/", "/badge_templates", "/badge_templates/", f"/badge_templates/{TPL_ACTIVE}/",
    "/badges/", "/authorization_tokens/",
])
async def test_credly_trailing_slash_optional(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(CREDLY + path, headers=CH)
    assert r.status_code == 200 and "data" in r.json()


async def test_credly_template_filters(client: httpx.AsyncClient) -> None:
    async def names(filter_text: str) -> list[str]:
        r = await client.get(f"{CREDLY}/badge_templates", params={"filter": filter_text},
                             headers=CH)
        assert r.status_code == 200
        return [t["name"] for t in r.json()["data"]]

    assert await names("state::active") == ["Archery", "Attendance"]
    assert await names("state::active,archived") == ["Archery", "Old", "Attendance"]
    assert await names("state::active|name::arch") == ["Archery"]
    assert await names("query::about old") == ["Old"]
    for bad in ("colour::red", "state=active", "state::active|nope::1"):
        r = await client.get(f"{CREDLY}/badge_templates", params={"filter": bad}, headers=CH)
        assert r.status_code == 400 and "message" in r.json()["data"]
    r = await client.get(f"{CREDLY}/badges", params={"filter": "name::x"}, headers=CH)
    assert r.status_code == 400
    one = (await client.get(f"{CREDLY}/badge_templates/{TPL_ACTIVE}", headers=CH)).json()
    assert one["metadata"] == {} and one["data"]["owner"]["id"] == ORG
    assert set(one["data"]) >= {"id", "name", "description", "state", "image_url", "owner"}
    r = await client.get(f"{CREDLY}/badge_templates/{OTHER_TPL}", headers=CH)
    assert r.status_code == 404 and r.json() == {"data": {"message": "Not found"}}


# --- Credly issue, revoke, events --------------------------------------------------------------


async def test_credly_issue_success_and_lookup(emu: Emulator, client: httpx.AsyncClient) -> None:
    r = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert r.status_code == 201
    badge = r.json()["data"]
    assert r.json()["metadata"] == {}
    assert badge["state"] == "pending" and badge["issuer_earner_id"] == "u-1"
    assert badge["badge_template"]["id"] == TPL_ACTIVE
    assert badge["issued_at"] == "2026-11-01T14:41:00.000Z"
    assert badge["issued_at_date"] == "2026-11-01" and badge["locale"] == "en"
    got = await client.get(f"{CREDLY}/badges/{badge['id']}/", headers=CH)
    assert got.json()["data"]["id"] == badge["id"]
    iso = await client.post(f"{CREDLY}/badges/", headers=CH, json=issue_body(
        "cy@example.org", "u-3", issued_at="2021-01-01T00:00:00+0000"))
    assert iso.status_code == 201 and iso.json()["data"]["issued_at_date"] == "2021-01-01"
    found = await client.get(f"{CREDLY}/badges", headers=CH, params={
        "filter": f"issuer_earner_id::u-1|badge_template_id::{TPL_ACTIVE}"})
    assert [b["id"] for b in found.json()["data"]] == [badge["id"]]
    by_mail = await client.get(f"{CREDLY}/badges", headers=CH, params={
        "filter": "recipient_email_all::ANN@example.org,cy@example.org|state::pending"})
    assert by_mail.json()["metadata"]["total_count"] == 2
    stored = emu.state()["credly"]
    assert [(b["id"], b["state"], b["issuer_earner_id"]) for b in stored["badges"]] == [
        (badge["id"], "pending", "u-1"), (iso.json()["data"]["id"], "pending", "u-3")]
    created = [e for e in stored["events"] if e["event_type"] == "badge.created"]
    assert [e["resource_id"] for e in created] == [badge["id"], iso.json()["data"]["id"]]
    event = await client.get(f"{CREDLY}/events/{created[0]['id']}", headers=CH)
    assert event.json()["data"]["badge"]["id"] == badge["id"]
    r = await client.get(f"{CREDLY}/badges/00000000-0000-4000-8000-00000000beef", headers=CH)
    assert r.status_code == 404


@pytest.mark.parametrize("field", ["recipient_email", "issued_to_first_name",
                                   "issued_to_last_name", "badge_template_id", "issued_at"])
async def test_credly_issue_required_fields(client: httpx.AsyncClient, field: str) -> None:
    body = issue_body()
    del body[field]
    r = await client.post(f"{CREDLY}/badges", json=body, headers=CH)
    assert r.status_code == 422
    assert r.json() == {"data": {"message": f"Validation failed: {field} can't be blank"}}
    r = await client.post(f"{CREDLY}/badges", json={**issue_body(), field: " "}, headers=CH)
    assert r.status_code == 422


async def test_credly_issue_template_rules(emu: Emulator, client: httpx.AsyncClient) -> None:
    r = await client.post(f"{CREDLY}/badges", json=issue_body(tid=OTHER_TPL), headers=CH)
    assert r.status_code == 404
    r = await client.post(f"{CREDLY}/badges", json=issue_body(tid=TPL_ARCHIVED), headers=CH)
    assert r.status_code == 422 and r.json()["data"]["message"].startswith("Validation failed")
    r = await client.post(f"{CREDLY}/badges", content=b"{oops", headers=CH)
    assert r.status_code == 400
    assert emu.state()["credly"]["badges"] == []


async def test_credly_duplicates_and_revoked_switch(emu: Emulator,
                                                    client: httpx.AsyncClient) -> None:
    dup = {"data": {"message": "Validation failed: User already has this badge"}}
    first = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert first.status_code == 201
    same_mail = await client.post(f"{CREDLY}/badges", json=issue_body(earner="u-9"), headers=CH)
    assert (same_mail.status_code, same_mail.json()) == (422, dup)
    same_earner = await client.post(f"{CREDLY}/badges", json=issue_body("x@example.org"),
                                    headers=CH)
    assert (same_earner.status_code, same_earner.json()) == (422, dup)
    for _ in range(2):
        allowed = await client.post(f"{CREDLY}/badges", json=issue_body(tid=TPL_DUPES),
                                    headers=CH)
        assert allowed.status_code == 201
    badge_id = first.json()["data"]["id"]
    revoked = await client.put(f"{CREDLY}/badges/{badge_id}/revoke", headers=CH,
                               json={"reason": "left", "suppress_revoke_notification_email": False})
    assert revoked.json()["data"]["state"] == "revoked"
    emu.set_options({"credly_revoked_blocks_reissue": True})
    blocked = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert (blocked.status_code, blocked.json()) == (422, dup)
    emu.set_options({"credly_revoked_blocks_reissue": False})
    again = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert again.status_code == 201
    states = sorted(b["state"] for b in emu.state()["credly"]["badges"]
                    if b["badge_template_id"] == TPL_ACTIVE)
    assert states == ["pending", "revoked"]
    with pytest.raises(ValueError, match="unknown options"):
        emu.set_options({"no_such_switch": True})


async def test_credly_concurrent_duplicate_issues_give_one_badge(
        emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.set_faults({"credly.issue": {"latency_ms": 20}})
    answers = await asyncio.gather(*[
        client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH) for _ in range(12)])
    assert sorted(r.status_code for r in answers) == [201] + [422] * 11
    assert len(emu.state()["credly"]["badges"]) == 1
    assert emu.counters()["credly.issue"]["max_in_flight"] == 12


async def test_credly_revoke_rules(emu: Emulator, client: httpx.AsyncClient) -> None:
    badge = (await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)).json()["data"]
    url = f"{CREDLY}/badges/{badge['id']}/revoke"
    no_reason = await client.put(url, json={}, headers=CH)
    assert no_reason.status_code == 422
    assert no_reason.json()["data"]["message"].startswith("Validation failed")
    done = await client.put(url + "/", json={"reason": "cheating"}, headers=CH)
    assert done.status_code == 200 and done.json()["metadata"] == {}
    assert done.json()["data"]["state"] == "revoked"
    assert done.json()["data"]["revocation_reason"] == "cheating"
    twice = await client.put(url, json={"reason": "again"}, headers=CH)
    assert twice.status_code == 422
    unknown = await client.put(f"{CREDLY}/badges/00000000-0000-4000-8000-00000000beef/revoke",
                               json={"reason": "x"}, headers=CH)
    assert unknown.status_code == 404
    foreign = await client.put(f"/credly/v1/organizations/{OTHER_ORG}/badges/{badge['id']}"
                               "/revoke", json={"reason": "x"}, headers=basic(OTHER_CKEY))
    assert foreign.status_code == 404
    (stored,) = emu.state()["credly"]["badges"]
    assert (stored["state"], stored["revocation_reason"]) == ("revoked", "cheating")


async def test_credly_badge_state_hook(emu: Emulator, client: httpx.AsyncClient) -> None:
    badge = (await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)).json()["data"]
    assert "accept_badge_url" in badge
    moved = emu.set_credly_badge_state(badge["id"], "accepted")
    assert moved["state"] == "accepted" and "badge_url" in moved
    got = (await client.get(f"{CREDLY}/badges/{badge['id']}", headers=CH)).json()["data"]
    assert got["state"] == "accepted"
    events = [e["event_type"] for e in emu.state()["credly"]["events"]]
    assert events == ["badge.created", "badge.state.changed"]
    with pytest.raises(ValueError):
        emu.set_credly_badge_state(badge["id"], "revoked")
    with pytest.raises(LookupError):
        emu.set_credly_badge_state("nope", "accepted")


async def test_credly_template_events(emu: Emulator, client: httpx.AsyncClient) -> None:
    created = emu.credly_template(ORG, "create", {"id": "22222222-0000-4000-8000-000000000000",
                                                  "name": "Brand new"})
    changed = emu.credly_template(ORG, "change", {"id": TPL_ACTIVE, "name": "Archery II"})
    archived = emu.credly_template(ORG, "archive", {"id": TPL_ACTIVE})
    deleted = emu.credly_template(ORG, "delete", {"id": TPL_DUPES})
    assert [e["event_type"] for e in (created, changed, archived, deleted)] == [
        "badge_template.created", "badge_template.changed", "badge_template.changed",
        "badge_template.deleted"]
    r = await client.get(f"{CREDLY}/events/{changed['id']}/", headers=CH)
    event = r.json()
    assert r.status_code == 200 and event["metadata"] == {}
    assert event["data"]["organization_id"] == ORG
    assert event["data"]["badge_template"]["name"] == "Archery II"
    assert event["data"]["badge_template"]["owner"] == {
        "type": "Organization", "id": ORG, "name": "Example Academy",
        "url": event["data"]["badge_template"]["owner"]["url"]}
    gone = (await client.get(f"{CREDLY}/events/{deleted['id']}", headers=CH)).json()["data"]
    assert gone["badge_template"]["id"] == TPL_DUPES
    current = (await client.get(f"{CREDLY}/badge_templates/{TPL_ACTIVE}", headers=CH)).json()
    assert current["data"]["state"] == "archived"
    assert (await client.get(f"{CREDLY}/badge_templates/{TPL_DUPES}",
                             headers=CH)).status_code == 404
    foreign = await client.get(f"/credly/v1/organizations/{OTHER_ORG}/events/{changed['id']}",
                               headers=basic(OTHER_CKEY))
    assert foreign.status_code == 404
    with pytest.raises(LookupError):
        emu.credly_template(ORG, "change", {"id": "missing"})
    with pytest.raises(ValueError):
        emu.credly_template(ORG, "explode", {"id": TPL_ACTIVE})


# --- Accredible --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [f"Token token={AKEY}", f'Token token="{AKEY}"',
                                   f"Token {AKEY}", f"Bearer {AKEY}"])
async def test_accredible_auth_forms(client: httpx.AsyncClient, value: str) -> None:
    r = await client.get("/accredible/v1/issuer/details", headers={"Authorization": value})
    assert r.status_code == 200 and r.json()["issuer"]["name"] == "Main"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token token=wrong"},
                                     basic(f"{AKEY}:"), {"Authorization": "Token"}])
async def test_accredible_refusal(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get("/accredible/v1/issuer/all_groups", headers=headers)
    assert r.status_code == 401
    assert r.text == "HTTP Token: Access denied."
    assert r.headers["WWW-Authenticate"] == 'Token realm="Application"'


async def test_accredible_account_isolation(emu: Emulator, client: httpx.AsyncClient) -> None:
    mine = (await client.get("/accredible/v1/issuer/groups/9001", headers=AH)).json()["group"]
    theirs = (await client.get("/accredible/v1/issuer/groups/9001/", headers=AH2)).json()
    assert mine["course_name"] == "Intro" and theirs["group"]["course_name"] == "Shared id"
    not_found = {"errors": "Doesn't exist"}
    for path in ("/accredible/v1/issuer/groups/9002", "/accredible/v1/designs/77",
                 "/accredible/v1/designs/None"):
        r = await client.get(path, headers=AH2)
        assert (r.status_code, r.json()) == (404, not_found)
    cred = (await client.post("/accredible/v1/credentials", json=credential_body(),
                              headers=AH)).json()["credential"]
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = await client.request(method, f"/accredible/v1/credentials/{cred['id']}",
                                 json={"credential": {"expired_on": "2026-11-01"}}, headers=AH2)
        assert (r.status_code, r.json()) == (404, not_found)
    found = await client.post("/accredible/v2/credentials/search", headers=AH2,
                              json={"query": {"recipient_email": "bob@example.org"}})
    assert found.json()["credentials"] == []
    other = await client.post("/accredible/v1/credentials", headers=AH2,
                              json=credential_body(group=9002))
    assert (other.status_code, other.json()) == (422, {"errors": "Invalid Group"})
    assert [c["account"] for c in emu.state()["accredible"]["credentials"]] == ["Main"]


async def test_accredible_groups_paging_three_pages() -> None:
    emu = Emulator(seed(groups=118), clock=lambda: NOW)  # 120 groups
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as c:
        seen: list[int] = []
        page: int | None = 1
        metas = []
        while page is not None:
            r = await c.get("/accredible/v1/issuer/all_groups", params={"page": page},
                            headers=AH)
            seen += [g["id"] for g in r.json()["groups"]]
            metas.append(r.json()["meta"])
            page = r.json()["meta"]["next_page"]
        assert len(metas) == 3 and len(seen) == len(set(seen)) == 120
        assert [(m["current_page"], m["prev_page"], m["next_page"]) for m in metas] == [
            (1, None, 2), (2, 1, 3), (3, 2, None)]
        assert all(m["total_pages"] == 3 and m["total_count"] == 120 for m in metas)
        r = await c.post("/accredible/v1/issuer/groups/search", headers=AH,
                         json={"page": 3, "page_size": 50})
        assert len(r.json()["groups"]) == 20 and r.json()["meta"]["next_page"] is None
        r = await c.post("/accredible/v1/issuer/groups/search/", headers=AH,
                         json={"page_size": 1000})
        assert len(r.json()["groups"]) == 100 and r.json()["meta"]["total_pages"] == 2
        r = await c.post("/accredible/v1/issuer/groups/search", headers=AH,
                         json={"ids": [9001, 10_005], "page": 1})
        assert [g["id"] for g in r.json()["groups"]] == [9001, 10_005]
        r = await c.post("/accredible/v1/issuer/groups/search", headers=AH,
                         json={"course_name": "bulk 11"})
        assert {g["id"] for g in r.json()["groups"]} == {10_011} | {
            10_110 + n for n in range(9)}
        r = await c.get("/accredible/v1/issuer/all_groups", params={"page": 9}, headers=AH)
        assert r.json()["groups"] == [] and r.json()["meta"]["next_page"] is None


async def test_accredible_designs(client: httpx.AsyncClient) -> None:
    r = await client.get("/accredible/v1/designs/77", headers=AH)
    assert r.status_code == 200
    assert r.json()["design"]["rasterized_content_url"] == "https://img.example.org/77.png"
    group = (await client.get("/accredible/v1/issuer/groups/9002", headers=AH)).json()["group"]
    assert group["primary_design_id"] is None and group["badge_design_id"] == 78


async def test_accredible_create_and_duplicates(emu: Emulator,
                                                client: httpx.AsyncClient) -> None:
    url = "/accredible/v1/credentials"
    r = await client.post(url, json=credential_body(issued_on="2026-10-30"), headers=AH)
    assert r.status_code == 200
    cred = r.json()["credential"]
    assert isinstance(cred["id"], int) and cred["group_id"] == 9001
    assert cred["recipient"]["email"] == "bob@example.org" and cred["recipient"]["id"] == "u-2"
    assert cred["issued_on"] == "2026-10-30" and cred["expired_on"] is None
    assert cred["badge"]["image"]["preview"] == "https://img.example.org/77.png"
    no_mail = await client.post(url, headers=AH, json={
        "credential": {"recipient": {"name": "X"}, "group_id": 9001}})
    assert no_mail.status_code == 422
    assert no_mail.json() == {"errors": {"recipient.email": ["can't be blank"]}}
    no_name = await client.post(url, headers=AH, json={
        "credential": {"recipient": {"email": "x@example.org"}, "group_id": 9001}})
    assert no_name.json() == {"errors": {"recipient.name": ["can't be blank"]}}
    bad_group = await client.post(url, json=credential_body(group=4242), headers=AH)
    assert (bad_group.status_code, bad_group.json()) == (422, {"errors": "Invalid Group"})
    taken = {"errors": {"recipient.email": ["has already been taken"]}}
    dup = await client.post(url, json=credential_body("BOB@example.org"), headers=AH)
    assert (dup.status_code, dup.json()) == (422, taken)
    for _ in range(2):
        ok = await client.post(url, json=credential_body(group=9002), headers=AH)
        assert ok.status_code == 200
    assert ok.json()["credential"]["badge"]["image"]["preview"] == "https://img.example.org/78.png"
    expire = await client.put(f"{url}/{cred['id']}", headers=AH,
                              json={"credential": {"expired_on": "2026-11-01"}})
    assert expire.json()["credential"]["expired_on"] == "2026-11-01"
    still = await client.post(url, json=credential_body(), headers=AH)
    assert (still.status_code, still.json()) == (422, taken)
    emu.set_options({"accredible_expired_blocks_duplicates": False})
    fresh = await client.post(url, json=credential_body(), headers=AH)
    assert fresh.status_code == 200 and fresh.json()["credential"]["id"] > cred["id"]
    records = emu.state()["accredible"]["credentials"]
    assert [(c["group_id"], c["expired_on"]) for c in records] == [
        (9001, "2026-11-01"), (9002, None), (9002, None), (9001, None)]


@pytest.mark.parametrize(("method", "value", "echoed"), [
    ("PUT", "2026-11-05", "2026-11-05"),
    ("PATCH", "05/11/2026", "2026-11-05"),
    ("PUT", "2026-11-05 23:30:00 -0500", "2026-11-05"),
    ("PATCH", None, None),
])
async def test_accredible_expire_formats(client: httpx.AsyncClient, method: str,
                                         value: str | None, echoed: str | None) -> None:
    cred = (await client.post("/accredible/v1/credentials", json=credential_body(
        expired_on="2030-01-01"), headers=AH)).json()["credential"]
    assert cred["expired_on"] == "2030-01-01"
    r = await client.request(method, f"/accredible/v1/credentials/{cred['id']}", headers=AH,
                             json={"credential": {"expired_on": value}})
    assert r.status_code == 200 and r.json()["credential"]["expired_on"] == echoed
    got = await client.get(f"/accredible/v1/credentials/{cred['id']}", headers=AH)
    assert got.json()["credential"]["expired_on"] == echoed


async def test_accredible_bad_date_and_delete(emu: Emulator, client: httpx.AsyncClient) -> None:
    cred = (await client.post("/accredible/v1/credentials", json=credential_body(),
                              headers=AH)).json()["credential"]
    url = f"/accredible/v1/credentials/{cred['id']}"
    bad = await client.put(url, json={"credential": {"expired_on": "next tuesday"}}, headers=AH)
    assert bad.status_code == 422 and bad.json() == {"errors": {"expired_on": ["is invalid"]}}
    deleted = await client.delete(url, headers=AH)
    assert deleted.status_code == 200 and deleted.json()["credential"]["id"] == cred["id"]
    assert (await client.get(url, headers=AH)).status_code == 404
    assert (await client.delete(url, headers=AH)).status_code == 404
    state = emu.state()["accredible"]
    assert state["credentials"] == []
    assert [c["id"] for c in state["deleted_credentials"]] == [cred["id"]]


async def test_accredible_v2_search_and_all_credentials(client: httpx.AsyncClient) -> None:
    ids = []
    for n in range(7):
        body = credential_body(f"p{n}@example.org", group=9001 if n < 5 else 9002)
        body["credential"]["recipient"]["id"] = f"u-{n}"
        r = await client.post("/accredible/v1/credentials", json=body, headers=AH)
        ids.append(r.json()["credential"]["id"])
    search = "/accredible/v2/credentials/search"
    r = await client.post(search, headers=AH, json={
        "query": {"recipient_email": "P3@example.org", "group.id": 9001}, "page": {"size": 5}})
    (row,) = r.json()["credentials"]
    assert row["id"] == ids[3] and row["recipient_email"] == "p3@example.org"
    assert row["group"]["id"] == 9001 and "recipient" not in row
    assert {"uuid", "recipient_name", "issued_on", "expired_on", "license_id"} <= set(row)
    r = await client.post(search, headers=AH, json={"query": {"recipient.id": "u-6"}})
    assert [c["id"] for c in r.json()["credentials"]] == [ids[6]]
    r = await client.post(search, headers=AH, json={"query": {"group.id": "9001"},
                                                    "page": {"size": 2, "from": 2}})
    assert [c["id"] for c in r.json()["credentials"]] == ids[2:4]
    meta = r.json()["meta"]
    assert (meta["count"], meta["from"], meta["size"]) == (5, 2, 2)
    assert isinstance(meta["cursor"], str)  # documented: an opaque token for page.cursor
    r = await client.post(search, headers=AH, json={"query": {"group.id[in]": [9002]},
                                                    "sort": {"id": "desc"}})
    assert [c["id"] for c in r.json()["credentials"]] == [ids[6], ids[5]]
    r = await client.post(search, headers=AH, json={"query": {"colour": "red"}})
    assert r.status_code == 400 and r.json()["status"] == "invalid_search_query"
    listed = await client.get("/accredible/v1/all_credentials", headers=AH,
                              params={"group_id": 9001, "page_size": 2, "page": 3})
    assert [c["id"] for c in listed.json()["credentials"]] == [ids[4]]
    assert listed.json()["meta"]["total_count"] == 5 and listed.json()["meta"]["total_pages"] == 3


# --- faults and counters -----------------------------------------------------------------------


async def test_fault_429_with_and_without_retry_after(emu: Emulator,
                                                      client: httpx.AsyncClient) -> None:
    emu.set_faults({"credly.templates.list": {"rate_429": 1.0, "retry_after": 7}})
    r = await client.get(f"{CREDLY}/badge_templates", headers=CH)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json() == {"data": {"message": "Too many requests"}}
    assert (await client.get(CREDLY, headers=CH)).status_code == 200  # other endpoint
    emu.set_faults({"*": {"rate_429": 1.0, "retry_after": None}})
    r = await client.get("/accredible/v1/issuer/details", headers=AH)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.json() == {"errors": "Too many requests"}
    counters = emu.counters()
    assert counters["credly.templates.list"] == {"requests": 1, "failed_injected": 1,
                                                 "max_in_flight": 1}
    assert counters["credly.organization"]["failed_injected"] == 0
    assert emu.state()["requests"] == {"total": 3, "failed_injected": 2}


async def test_fault_5xx_statuses_and_seeded_repeatability() -> None:
    async def run(rng_seed: int) -> list[int]:
        emu = Emulator(seed(), clock=lambda: NOW, rng_seed=rng_seed)
        emu.set_faults({"accredible.groups.list": {"rate_5xx": 0.5, "statuses": [502, 503]}})
        async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as c:
            return [(await c.get("/accredible/v1/issuer/all_groups", headers=AH)).status_code
                    for _ in range(40)]

    first, second, other = await run(5), await run(5), await run(6)
    assert first == second and first != other
    assert set(first) == {200, 502, 503}


async def test_fail_next_script_then_success(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.set_faults({"credly.organization": {"fail_next": [503, 429, 500]},
                    "*": {"fail_next": [502]}})
    codes = [(await client.get(CREDLY, headers=CH)).status_code for _ in range(5)]
    assert codes == [503, 429, 500, 502, 200]
    assert emu.state()["faults"]["credly.organization"]["fail_next"] == []
    assert emu.counters()["credly.organization"]["failed_injected"] == 4
    with pytest.raises(ValueError, match="unknown endpoint"):
        emu.set_faults({"credly.isue": {"rate_5xx": 1}})
    with pytest.raises(ValueError):
        emu.set_faults({"credly.issue": {"rate_5xx": 2}})


async def test_phase_after_commits_the_effect(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.set_faults({"credly.issue": {"fail_next": [500], "phase": "before"}})
    r = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert r.status_code == 500 and emu.state()["credly"]["badges"] == []
    emu.set_faults({"credly.issue": {"fail_next": [500], "phase": "after"},
                    "accredible.credentials.create": {"rate_5xx": 1.0, "statuses": [503],
                                                      "phase": "after"}})
    r = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert r.status_code == 500 and r.json() == {"data": {"message": "Internal server error"}}
    (badge,) = emu.state()["credly"]["badges"]
    assert badge["issuer_earner_id"] == "u-1"
    again = await client.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert again.status_code == 422  # the lost answer's badge exists
    r = await client.post("/accredible/v1/credentials", json=credential_body(), headers=AH)
    assert r.status_code == 503 and r.json() == {"errors": "Service unavailable"}
    assert len(emu.state()["accredible"]["credentials"]) == 1


async def test_counters_max_in_flight_under_latency(emu: Emulator,
                                                    client: httpx.AsyncClient) -> None:
    emu.set_faults({"accredible.groups.search": {"latency_ms": 80, "jitter_ms": 10}})
    started = time.monotonic()
    answers = await asyncio.gather(*[
        client.post("/accredible/v1/issuer/groups/search", json={}, headers=AH)
        for _ in range(8)])
    assert all(r.status_code == 200 for r in answers)
    assert time.monotonic() - started < 0.6  # concurrent, not serial
    counts = emu.counters()["accredible.groups.search"]
    assert counts == {"requests": 8, "failed_injected": 0, "max_in_flight": 8}
    await client.post("/accredible/v1/issuer/groups/search", json={}, headers=AH)
    assert emu.counters()["accredible.groups.search"]["max_in_flight"] == 8
    assert set(emu.counters()) == set(ENDPOINTS)
    routed = [name for _, name, _, _ in credly_module.ROUTES + accredible_module.ROUTES]
    routed += credly_oauth_module.ENDPOINT_NAMES
    assert sorted(routed) == sorted(ENDPOINTS)


# --- over real HTTP ----------------------------------------------------------------------------


def test_real_http_paging_urls_use_the_bound_port(live: str) -> None:
    with httpx.Client(base_url=live, timeout=5) as c:
        r = c.get(f"{CREDLY}/badge_templates", params={"per": 1, "filter": "state::active"},
                  headers=CH)
        assert r.status_code == 200
        next_url = r.json()["metadata"]["next_page_url"]
        assert next_url.startswith(f"{live}{CREDLY}/badge_templates?")
        second = c.get(next_url, headers=CH).json()
        assert second["metadata"]["current_page"] == 2
        assert second["data"][0]["name"] == "Attendance"
        denied = c.get("/accredible/v1/issuer/details", headers={"Authorization": "Token x"})
        assert denied.status_code == 401 and denied.text == "HTTP Token: Access denied."
        assert denied.headers["www-authenticate"] == 'Token realm="Application"'
        ok = c.get("/accredible/v1/issuer/details/", headers=AH)
        assert ok.json()["issuer"]["name"] == "Main"


def test_real_http_hang_is_a_client_timeout(emu: Emulator, live: str) -> None:
    emu.set_faults({"credly.organization": {"rate_hang": 1.0, "hang_s": 20}})
    started = time.monotonic()
    with httpx.Client(base_url=live, timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        c.get(CREDLY, headers=CH)
    assert time.monotonic() - started < 2
    emu.set_faults({"credly.organization": {"fail_next": ["hang"], "hang_s": 0.05}})
    with httpx.Client(base_url=live, timeout=5) as c:
        r = c.get(CREDLY, headers=CH)
        assert r.status_code == 504
        assert c.get(CREDLY, headers=CH).status_code == 200
    assert emu.counters()["credly.organization"]["failed_injected"] == 2


def test_stop_returns_promptly_with_a_request_hanging(emu: Emulator) -> None:
    url, stop = start_in_thread(emu)
    emu.set_faults({"*": {"rate_hang": 1.0, "hang_s": 600}})
    results: list[Any] = []

    def call() -> None:
        try:
            results.append(httpx.get(f"{url}{CREDLY}", headers=CH, timeout=30).status_code)
        except httpx.HTTPError as error:
            results.append(type(error).__name__)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    stop()
    worker.join(10)
    assert time.monotonic() - started < 5
    assert results == [504]  # released at shutdown, answered as a gateway timeout


def test_control_api_over_http(emu: Emulator, live: str) -> None:
    with httpx.Client(base_url=live, timeout=5) as c:
        assert c.put("/_sandbox/faults", json={"credly.issue": {"fail_next": [503]}}).json() == {
            "credly.issue": {"fail_next": [503]}}
        assert c.put("/_sandbox/faults", json={"nope": {}}).status_code == 400
        assert c.post(f"{CREDLY}/badges", json=issue_body(), headers=CH).status_code == 503
        r = c.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
        assert r.status_code == 201
        badge_id = r.json()["data"]["id"]
        moved = c.post(f"/_sandbox/credly/badges/{badge_id}/state", json={"state": "rejected"})
        assert moved.json()["state"] == "rejected"
        assert c.post("/_sandbox/credly/badges/nope/state",
                      json={"state": "accepted"}).status_code == 404
        event = c.post("/_sandbox/credly/templates", json={
            "organization_id": ORG, "action": "archive", "template": {"id": TPL_ACTIVE}}).json()
        assert event["event_type"] == "badge_template.changed"
        assert event["badge_template"]["state"] == "archived"
        fetched = c.get(f"{CREDLY}/events/{event['id']}", headers=CH).json()["data"]
        assert fetched["id"] == event["id"]
        now = c.post("/_sandbox/clock", json={"advance_seconds": 181 * 86400}).json()["now"]
        assert now == (NOW + timedelta(days=181)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert c.get(CREDLY, headers=CH).status_code == 401
        state = c.get("/_sandbox/state").json()
        assert [b["state"] for b in state["credly"]["badges"]] == ["rejected"]
        assert state["requests"] == {"total": 4, "failed_injected": 1}
        assert state["accredible"]["credentials"] == []
        counters = c.get("/_sandbox/counters/").json()
        assert counters["credly.issue"] == {"requests": 2, "failed_injected": 1,
                                            "max_in_flight": 1}
        options = c.put("/_sandbox/options", json={"webhook_lenient": True}).json()
        assert options["webhook_lenient"] is True
        assert c.post("/_sandbox/reset", json={}).json() == {"ok": True}
        assert c.get(CREDLY, headers=CH).status_code == 200
        fresh = c.get("/_sandbox/state").json()
        assert fresh["credly"]["badges"] == [] and fresh["faults"] == {}
        assert fresh["requests"] == {"total": 1, "failed_injected": 0}
        reseeded = c.post("/_sandbox/reset", json={"seed": demo_seed()})
        assert reseeded.status_code == 200
        assert len(c.get("/_sandbox/state").json()["accredible"]["accounts"]) == 2
        assert c.get(f"{CREDLY}/badge_templates", headers=basic(f"{CKEY}:")).json()[
            "metadata"]["total_count"] == 13


# --- webhooks ----------------------------------------------------------------------------------


async def test_webhook_retried_until_200_through_a_mock_transport() -> None:
    received: list[dict[str, Any]] = []
    answers = iter([500, 204, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        received.append({"url": str(request.url), "body": json.loads(request.content)})
        return httpx.Response(next(answers))

    base = seed()
    base["credly"]["organizations"][0]["webhook_url"] = "https://hooks.example.org/credly"
    emu = Emulator(base, clock=lambda: NOW, webhook_transport=httpx.MockTransport(handler),
                   options={"webhook_retry_delays": [0.01, 0.01, 0.01]})
    event = emu.credly_template(ORG, "change", {"id": TPL_ACTIVE, "name": "Renamed"})
    assert await emu.wait_webhooks(5)
    assert [r["body"] for r in received] == [{
        "id": event["id"], "organization_id": ORG, "event_type": "badge_template.changed",
        "occurred_at": "2026-11-01T12:00:00.000Z"}] * 3
    assert received[0]["url"] == "https://hooks.example.org/credly"
    (delivery,) = emu.webhook_deliveries()
    assert [a["status"] for a in delivery["attempts"]] == [500, 204, 200]
    assert delivery["delivered"] is True
    emu.credly_template(OTHER_ORG, "archive", {"id": OTHER_TPL})  # no webhook_url
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as c:
        await c.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)  # badge events off
    assert await emu.wait_webhooks(5) and len(emu.webhook_deliveries()) == 1


async def test_webhook_lenient_gives_up_and_badge_events() -> None:
    statuses: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        statuses.append(204)
        return httpx.Response(204)

    base = seed()
    base["credly"]["organizations"][0]["webhook_url"] = "https://hooks.example.org/credly"
    emu = Emulator(base, clock=lambda: NOW, webhook_transport=httpx.MockTransport(handler),
                   options={"webhook_retry_delays": [0.01, 0.01]})
    emu.credly_template(ORG, "delete", {"id": TPL_DUPES})
    assert await emu.wait_webhooks(5)
    assert statuses == [204, 204, 204]  # never a 200: gave up after the retries
    assert emu.webhook_deliveries()[0]["delivered"] is False
    emu.set_options({"webhook_lenient": True, "webhook_badge_events": True})
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as c:
        await c.post(f"{CREDLY}/badges", json=issue_body(), headers=CH)
    assert await emu.wait_webhooks(5)
    last = emu.webhook_deliveries()[-1]
    assert last["event_type"] == "badge.created" and last["delivered"] is True
    assert len(statuses) == 4


def test_webhook_to_a_real_receiver_from_the_control_api(emu: Emulator, live: str) -> None:
    received: list[dict[str, Any]] = []
    answers = iter([503])

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=next(answers, 200))

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        emu.set_options({"webhook_retry_delays": [0.05, 0.05]})
        with httpx.Client(base_url=live, timeout=5) as c:
            r = c.put(f"/_sandbox/credly/organizations/{ORG}/webhook",
                      json={"webhook_url": f"http://127.0.0.1:{port}/hook"})
            assert r.status_code == 200
            event = c.post("/_sandbox/credly/templates", json={
                "organization_id": ORG, "action": "create",
                "template": {"name": "Hooked", "description": "x"}}).json()
            deadline = time.monotonic() + 10
            while len(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [r["id"] for r in received] == [event["id"], event["id"]]
            assert received[0]["event_type"] == "badge_template.created"
            fetched = c.get(f"{CREDLY}/events/{received[1]['id']}", headers=CH).json()["data"]
            assert fetched["badge_template"]["name"] == "Hooked"
            deadline = time.monotonic() + 5
            while emu.webhooks.pending() and time.monotonic() < deadline:
                time.sleep(0.02)
            (delivery,) = c.get("/_sandbox/state").json()["credly"]["webhook_deliveries"]
            assert [a["status"] for a in delivery["attempts"]] == [503, 200]
    finally:
        server.should_exit = True
        thread.join(10)


# --- the command -------------------------------------------------------------------------------


@contextlib.contextmanager
def spawn(code: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running `code`, killed if still alive, its pipes closed."""
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True,
                          cwd=Path(__file__).resolve().parents[1]) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_main_serve_prints_listening_first_and_serves(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed()), encoding="utf-8")
    code = ("import sys; from badgetui.sandbox.server import main_serve; "
            f"sys.exit(main_serve({str(seed_file)!r}, '127.0.0.1', 0, 0, 1.0, 0.0))")
    with spawn(code) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base = line.removeprefix("listening on ")
        port = int(base.rsplit(":", 1)[1])
        assert port > 0
        with httpx.Client(base_url=base, timeout=5) as c:
            state = c.get("/_sandbox/state")
            assert state.status_code == 200  # control API is never faulted
            assert state.json()["faults"]["*"]["rate_429"] == 0.5
            orgs = state.json()["credly"]["organizations"]
            assert [o["id"] for o in orgs] == [ORG, OTHER_ORG]
            answers = [c.get(CREDLY, headers=CH) for _ in range(30)]
            assert {r.status_code for r in answers} == {429, 500}  # --error-rate 1.0
            assert all(r.headers["Retry-After"] == "1" for r in answers if r.status_code == 429)
            counted = c.get("/_sandbox/counters").json()["credly.organization"]
            assert counted["requests"] == counted["failed_injected"] == 30
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_main_serve_demo_seed_and_sigint() -> None:
    code = ("import sys; from badgetui.sandbox.server import main_serve; "
            "sys.exit(main_serve(None, '127.0.0.1', 0, 5, 0.0, 0.0))")
    with spawn(code) as proc:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().removeprefix("listening on ")
        r = httpx.get(f"{base}/accredible/v1/issuer/all_groups",
                      headers={"Authorization": "Token token=sandbox-accredible-key"}, timeout=5)
        assert r.status_code == 200 and r.json()["meta"]["total_count"] == 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_main_serve_bad_seed_fails_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    code = ("import sys; from badgetui.sandbox.server import main_serve; "
            f"sys.exit(main_serve({str(bad)!r}, '127.0.0.1', 0, 0, 0.0, 0.0))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and done.stdout == ""
    assert "not JSON" in done.stderr
