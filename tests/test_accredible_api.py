"""Accredible behaviours of issue 10, client and emulator together (in-process ASGI transport).

Each test asserts on data: what the emulator holds and what the client returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest

import badgetui.providers.accredible as accredible_client
import badgetui.sandbox.accredible_state as accredible_state
from badgetui.providers.accredible import AccredibleClient
from badgetui.providers.errors import PermanentError
from badgetui.sandbox import Emulator
from tests.conftest import FakeClock
from tests.test_providers import Recorder

BASE = "http://sandbox/accredible/v1/"
KEY = "accredible-issue10-key-0000-ABCD"
AH = {"Authorization": f"Token token={KEY}"}
GROUPS = 230
ISSUED = date(2026, 11, 1)


def seed() -> dict[str, Any]:
    groups: list[dict[str, Any]] = [
        {"id": 9001, "name": "g-9001", "course_name": "Two years", "auto_expiry": 2},
        {"id": 90011, "name": "g-90011", "course_name": "Prefix of nothing"},
        {"id": 9002, "name": "g-9002", "course_name": "Never expires", "auto_expiry": 0},
        {"id": 9003, "name": "g-9003", "course_name": "Leap", "auto_expiry": 1},
    ]
    groups += [{"id": 20_000 + n, "name": f"bulk-{n}", "course_name": f"Bulk {n}"}
               for n in range(GROUPS - len(groups))]
    return {"credly": {"organizations": []},
            "accredible": {"accounts": [{"name": "Issue 10", "api_key": KEY, "groups": groups,
                                         "designs": []}]}}


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    return Emulator(seed(), clock=clock, rng_seed=3)


@pytest.fixture
def recorder(emu: Emulator) -> Recorder:
    return Recorder(emu.transport())


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[AccredibleClient]:
    async with AccredibleClient(BASE, KEY, transport=recorder) as c:
        yield c


def stored(emu: Emulator) -> dict[int, dict[str, Any]]:
    return {c["id"]: c for c in emu.state()["accredible"]["credentials"]}


async def create(client: AccredibleClient, email: str, group: int = 9001,
                 on: date = ISSUED) -> accredible_client.AccredibleCredential:
    return await client.create_credential(group_id=group, name="Ann Lee", email=email,
                                          recipient_id="7", issued_on=on)


# -- 1. auto_expiry -------------------------------------------------------------------------


async def test_group_auto_expiry_in_years_sets_expired_on_and_stays_live(
    emu: Emulator, client: AccredibleClient
) -> None:
    two = await create(client, "ann@example.org")
    never = await create(client, "ann@example.org", group=9002)
    leap = await create(client, "ann@example.org", group=9003, on=date(2028, 2, 29))
    assert two.expired_on == "2028-11-01"  # issued 2026-11-01 + auto_expiry 2 (years)
    assert never.expired_on is None  # auto_expiry <= 0 is ignored (openapi.json)
    assert leap.expired_on == "2029-02-28"
    held = stored(emu)
    assert [held[c.id]["expired_on"] for c in (two, never, leap)] == [
        "2028-11-01", None, "2029-02-28"]
    # A future expiry is live; on and after the day it is not.
    assert two.live_on(date(2026, 11, 2)) and two.live_on(date(2028, 10, 31))
    assert not two.live_on(date(2028, 11, 1))
    assert never.live_on(date(2099, 1, 1))
    (found,) = await client.search(email="ann@example.org", group_id=9001)
    assert found.expired_on == "2028-11-01" and found.live_on(ISSUED)
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as raw:
        group = (await raw.get("issuer/groups/9001", headers=AH)).json()["group"]
        assert group["auto_expiry"] == 2
        # An expiry given on create wins over the group's.
        answer = await raw.post("credentials", headers=AH, json={"credential": {
            "group_id": 9001, "recipient": {"name": "Bo", "email": "bo@example.org"},
            "issued_on": "2026-11-01", "expired_on": "2027-01-31"}})
    assert answer.json()["credential"]["expired_on"] == "2027-01-31"


async def test_approve_is_reported_by_v1_answers_and_v2_rows(client: AccredibleClient) -> None:
    created = await create(client, "ann@example.org")
    assert created.approve is True
    (row,) = await client.search(email="ann@example.org", group_id=9001)
    assert row.approve is True  # v2 rows carry `approve` (openapi.json, v2 search answer)
    assert accredible_client.AccredibleCredential.from_api(
        {"id": 1, "group": {"id": 2}, "recipient_email": "x@example.org"}).approve is None


# -- 2. credits and publishing -------------------------------------------------------------


async def test_out_of_credits_creates_unpublished_and_publish_republishes(
    emu: Emulator, client: AccredibleClient, recorder: Recorder
) -> None:
    emu.set_options({"accredible_credits": 1})
    first = await create(client, "ann@example.org")
    second = await create(client, "bob@example.org")
    assert (first.approve, second.approve) == (True, False)
    held = stored(emu)
    assert (held[first.id]["approve"], held[second.id]["approve"]) == (True, False)
    assert emu.state()["accredible"]["credits_left"] == 0
    (row,) = await client.search(email="bob@example.org", group_id=9001)
    assert row.approve is False and row.id == second.id

    still = await client.publish(second.id)  # no credits yet: stays unpublished
    assert still.approve is False and stored(emu)[second.id]["approve"] is False
    emu.set_options({"accredible_credits": 2})  # one more credit bought
    published = await client.publish(second.id)
    assert (published.id, published.approve) == (second.id, True)
    assert stored(emu)[second.id]["approve"] is True
    assert emu.state()["accredible"]["credits_left"] == 0
    assert recorder.sent("PUT")[-1] == (f"/accredible/v1/credentials/{second.id}",
                                        {"credential": {"approve": True}})


async def test_out_of_credits_refusal_reading_is_a_permanent_error(
    emu: Emulator, client: AccredibleClient
) -> None:
    emu.set_options({"accredible_credits": 0, "accredible_out_of_credits": "refuse"})
    with pytest.raises(PermanentError) as caught:
        await create(client, "ann@example.org")
    assert (caught.value.status, caught.value.message) == (422, "Insufficient credits")
    assert stored(emu) == {}


# -- 3. PUT ---------------------------------------------------------------------------------


async def test_expire_and_publish_use_put_and_the_emulator_still_takes_patch(
    emu: Emulator, client: AccredibleClient, recorder: Recorder
) -> None:
    created = await create(client, "ann@example.org", group=9002)
    expired = await client.expire(created.id, date(2026, 11, 2))
    assert expired.expired_on == "2026-11-02" and not expired.live_on(date(2026, 11, 2))
    assert stored(emu)[created.id]["expired_on"] == "2026-11-02"
    assert [r.method for r in recorder.requests] == ["POST", "PUT"]
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as raw:
        r = await raw.patch(f"credentials/{created.id}", headers=AH,
                            json={"credential": {"expired_on": None}})
    assert r.status_code == 200 and stored(emu)[created.id]["expired_on"] is None


# -- 4. group listing -----------------------------------------------------------------------


async def test_groups_come_from_groups_search_with_documented_paging(
    emu: Emulator, client: AccredibleClient, recorder: Recorder
) -> None:
    progress: list[tuple[int, int]] = []
    groups = await client.groups(on_page=lambda d, t: progress.append((d, t)))
    assert sorted(g.id for g in groups) == sorted(
        g["id"] for g in emu.state()["accredible"]["accounts"][0]["groups"])
    assert len(groups) == GROUPS
    sent = recorder.sent("POST")
    assert {path for path, _ in sent} == {"/accredible/v1/issuer/groups/search"}
    assert sorted(body["page"] for _, body in sent) == [1, 2, 3, 4, 5]
    assert progress[-1] == (5, 5)
    assert emu.counters()["accredible.groups.list"]["requests"] == 0
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as raw:
        meta = (await raw.post("issuer/groups/search", headers=AH,
                               json={"page": 2, "page_size": 50})).json()["meta"]
    assert {k: meta[k] for k in ("current_page", "next_page", "prev_page", "total_pages",
                                 "total_count")} == {
        "current_page": 2, "next_page": 3, "prev_page": 1, "total_pages": 5,
        "total_count": GROUPS}


# -- 5. lookups re-checked on the client ----------------------------------------------------


async def _lookalikes(client: AccredibleClient) -> dict[str, int]:
    made = {}
    for email, group in (("Ann@Example.org", 9001), ("joann@example.org", 9001),
                         ("ann@example.org.uk", 9001), ("ann@example.org", 90011)):
        made[f"{email}/{group}"] = (await create(client, email, group=group)).id
    return made


async def test_search_rechecks_every_row_when_the_server_matches_loosely(
    emu: Emulator, client: AccredibleClient, recorder: Recorder
) -> None:
    made = await _lookalikes(client)
    emu.set_options({"loose_filters": True})
    query = {"query": {"recipient_email": "ann@example.org", "group.id": 9001,
                       "no_such_key": "x"}}
    async with httpx.AsyncClient(transport=emu.transport(),
                                 base_url="http://sandbox/accredible/v2/") as raw:
        loose = (await raw.post("credentials/search", headers=AH, json=query)).json()
    assert len(loose["credentials"]) == 4  # the loose server hands out every lookalike

    found = await client.search(email="ann@example.org", group_id=9001)
    assert [(c.id, c.email, c.group_id) for c in found] == [
        (made["Ann@Example.org/9001"], "Ann@Example.org", 9001)]
    (path, body) = recorder.sent("POST")[-1]
    assert path == "/accredible/v2/credentials/search"
    assert body["query"] == {"recipient_email": "ann@example.org", "group.id": 9001}
    assert await client.search(email="nn@example.org", group_id=900) == []


async def test_strict_search_refuses_unknown_keys_and_loose_ignores_them(
    emu: Emulator,
) -> None:
    async with httpx.AsyncClient(transport=emu.transport(),
                                 base_url="http://sandbox/accredible/v2/") as raw:
        body = {"query": {"no_such_key": "x"}}
        strict = await raw.post("credentials/search", headers=AH, json=body)
        emu.set_options({"loose_filters": True})
        loose = await raw.post("credentials/search", headers=AH, json=body)
    assert strict.status_code == 400 and strict.json()["status"] == "invalid_search_query"
    assert loose.status_code == 200


async def test_group_credentials_pages_through_everything_and_rechecks(
    emu: Emulator, client: AccredibleClient
) -> None:
    account = emu.sandbox.accredible.accounts[next(iter(emu.sandbox.accredible.accounts))]
    for n in range(250):
        emu.sandbox.accredible.create(account, {"credential": {
            "group_id": 9001, "recipient": {"name": f"L {n}", "email": f"l{n}@example.org"}}})
    for n in range(30):
        emu.sandbox.accredible.create(account, {"credential": {
            "group_id": 90011, "recipient": {"name": f"M {n}", "email": f"m{n}@example.org"}}})
    emu.set_options({"loose_filters": True})  # 9001 also matches 90011 on the server
    progress: list[tuple[int, int]] = []
    found = await client.group_credentials(9001, on_page=lambda d, t: progress.append((d, t)))
    expected = {c["id"] for c in emu.state()["accredible"]["credentials"]
                if c["group_id"] == 9001}
    assert len(expected) == 250
    assert sorted(c.id for c in found) == sorted(expected)
    assert {c.group_id for c in found} == {9001}
    assert progress[-1][0] == progress[-1][1] >= 3


async def test_group_credentials_beyond_the_offset_window_use_the_cursor(
    emu: Emulator, client: AccredibleClient, recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 10 000-result offset window, scaled down on both sides so the test stays small.
    monkeypatch.setattr(accredible_state, "SEARCH_WINDOW", 200)
    monkeypatch.setattr(accredible_client, "SEARCH_MAX_RESULTS", 200)
    account = emu.sandbox.accredible.accounts[next(iter(emu.sandbox.accredible.accounts))]
    for n in range(450):
        emu.sandbox.accredible.create(account, {"credential": {
            "group_id": 9002, "recipient": {"name": f"L {n}", "email": f"l{n}@example.org"}}})
    found = await client.group_credentials(9002)
    assert sorted(c.id for c in found) == sorted(stored(emu))
    pages = [body["page"] for _, body in recorder.sent("POST")]
    assert [p.get("from") for p in pages if "from" in p] == [0, 100]
    assert sum("cursor" in p for p in pages) >= 3
    assert not any("cursor" in p and "from" in p for p in pages)
    async with httpx.AsyncClient(transport=emu.transport(),
                                 base_url="http://sandbox/accredible/v2/") as raw:
        past = await raw.post("credentials/search", headers=AH,
                              json={"query": {}, "page": {"from": 150, "size": 100}})
        both = await raw.post("credentials/search", headers=AH,
                              json={"query": {}, "page": {"from": 0, "cursor": "WzFd"}})
    assert (past.status_code, both.status_code) == (400, 400)
