"""`badgetui reconcile`: drift between the provider and badgetui, both ways (issue 10, item 9).

Each test builds the drift the way it happens in real life (a credential deleted or expired in
the Accredible dashboard, a badge revoked at Credly, a delivery that never finished, a
credential issued by another system), runs a dry run (nothing may change), then the fix, then
a second reconcile that must find nothing left to fix.
"""

from __future__ import annotations

import json

import httpx
import pytest

from badgetui.cli import main
from badgetui.store.models import AuditLog, Badge, DeliveryJob, Learner
from tests.conftest import sandbox_seed
from tests.helpers import DEMO, course_event, jsonl
from tests.test_delivery import configure, emu_badges
from tests.test_lookups import ACCREDIBLE_KEY, GROUP, accredible_http, create_elsewhere


def credentials(emulator) -> dict[int, dict]:
    return {c["id"]: c for c in emulator.state()["accredible"]["credentials"]}


def badge_of(username: str) -> Badge:
    return (Badge.select().join(Learner).where(Learner.username == username)
            .order_by(Badge.id.desc()).first())


async def put(emulator, credential_id: int, **fields: object) -> None:
    async with accredible_http(emulator) as client:
        answer = await client.put(f"credentials/{credential_id}", json={"credential": fields})
    assert answer.status_code == 200, answer.text


async def delete(emulator, credential_id: int) -> None:
    async with accredible_http(emulator) as client:
        answer = await client.delete(f"credentials/{credential_id}")
    assert answer.status_code == 200, answer.text


async def accredible_drift(fast, emulator) -> dict[str, int]:
    """ann: expired in the dashboard; bob: deleted there; cat: revoked here, live again
    there; dan: issue failed for good; zed: issued there by another system."""
    await configure(fast, provider="accredible", external_id=str(GROUP))
    fast.intake.ingest_lines(jsonl(*(course_event(u, DEMO) for u in ("ann", "bob", "cat"))),
                             "t")
    assert (await fast.delivery.run()).counts["issued"] == 3
    fast.intake.ingest_lines(jsonl(course_event("cat", DEMO, passing=False)), "t")
    assert (await fast.delivery.run()).counts["revoked"] == 1
    emulator.set_faults({"accredible.credentials.create": {"fail_next": [422]}})
    fast.intake.ingest_lines(jsonl(course_event("dan", DEMO)), "t")
    assert (await fast.delivery.run()).counts["failed"] == 1
    emulator.set_faults({})
    zed = await create_elsewhere(emulator, "zed")
    ids = {u: int(badge_of(u).external_id) for u in ("ann", "bob", "cat")}
    await put(emulator, ids["ann"], expired_on="2026-10-20")
    await delete(emulator, ids["bob"])
    await put(emulator, ids["cat"], expired_on=None)
    return {**ids, "zed": zed}


async def test_accredible_dry_run_reports_every_drift_and_changes_nothing(fast, emulator):
    ids = await accredible_drift(fast, emulator)
    before_db = [(b.id, b.provider_state, b.external_id, b.last_error) for b in Badge.select()]
    before_jobs = [(j.id, j.state) for j in DeliveryJob.select()]
    before_remote = credentials(emulator)

    report = await fast.reconcile.reconcile(dry_run=True)

    kinds = {(d.kind, d.username or "", d.external_id) for d in report.drifts}
    assert kinds == {
        ("revoked_there", "ann", str(ids["ann"])),
        ("missing", "bob", str(ids["bob"])),
        ("live_there", "cat", str(ids["cat"])),
        ("stuck", "dan", None),
        ("unknown", "", str(ids["zed"])),
    }
    assert report.fixed == 0 and report.errors == []
    assert [(b.id, b.provider_state, b.external_id, b.last_error)
            for b in Badge.select()] == before_db
    assert [(j.id, j.state) for j in DeliveryJob.select()] == before_jobs
    assert credentials(emulator) == before_remote
    assert "would fix 4" in report.summary()


async def test_accredible_reconcile_fixes_both_ways_and_then_finds_nothing(fast, emulator):
    ids = await accredible_drift(fast, emulator)

    report = await fast.reconcile.reconcile()
    assert report.fixed == 4, report.drifts
    delivery = await fast.delivery.run()
    assert (delivery.counts["issued"], delivery.counts["revoked"]) == (2, 1)

    remote = credentials(emulator)
    ann = badge_of("ann")  # expired there: recorded, still awarded here
    assert (ann.status, ann.provider_state, ann.provider_expires_on) == (
        "awarded", "expired", "2026-10-20")
    assert "expired at Accredible on 2026-10-20" in ann.last_error
    assert remote[ids["ann"]]["expired_on"] == "2026-10-20"  # not restored behind our back
    bob = badge_of("bob")  # deleted there: issued again
    assert bob.provider_state == "accepted" and int(bob.external_id) not in ids.values()
    assert remote[int(bob.external_id)]["recipient"]["email"] == "bob@example.org"
    assert remote[ids["cat"]]["expired_on"] is not None  # revoked again
    dan = badge_of("dan")
    assert dan.provider_state == "accepted" and int(dan.external_id) in remote
    assert ids["zed"] in remote and remote[ids["zed"]]["expired_on"] is None  # left alone
    assert AuditLog.select().where(AuditLog.action == "reconcile.fix").count() == 4

    again = await fast.reconcile.reconcile()
    assert [(d.kind, d.external_id) for d in again.drifts] == [("unknown", str(ids["zed"]))]
    assert again.fixed == 0


async def test_a_credential_the_listing_misses_is_confirmed_before_reissuing(fast, emulator):
    """A search index may lag: the listing misses the credential but a GET finds it."""
    await configure(fast, provider="accredible", external_id=str(GROUP))
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    await fast.delivery.run()
    held = int(badge_of("ann").external_id)
    emulator.set_options({"accredible_search_lag_s": 600})
    await put(emulator, held, description="touched")  # re-indexing: search misses it
    report = await fast.reconcile.reconcile()
    assert report.drifts == [] and report.fixed == 0
    assert list(credentials(emulator)) == [held]
    assert not DeliveryJob.select().where(DeliveryJob.state == "queued").exists()


async def test_unpublished_there_is_recorded_and_published_later_is_delivered(fast, emulator):
    await configure(fast, provider="accredible", external_id=str(GROUP))
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    await fast.delivery.run()
    ann = badge_of("ann")
    # Unpublished in the dashboard (as an out-of-credits create leaves it).
    await put(emulator, int(ann.external_id), approve=False)
    report = await fast.reconcile.reconcile()
    assert [(d.kind, d.action) for d in report.drifts] == [
        ("unpublished", "recorded unpublished")]
    assert badge_of("ann").provider_state == "unpublished"
    # Published again there: the search row does not say so, reconcile asks and records it.
    await put(emulator, int(ann.external_id), approve=True)
    report = await fast.reconcile.reconcile()
    assert [d.kind for d in report.drifts] == ["state"]
    fixed = badge_of("ann")
    assert (fixed.provider_state, fixed.last_error) == ("accepted", "")


async def test_reconcile_is_unfooled_by_a_loose_server(make_provider_services, emulator):
    """A server matching `group.id` by substring returns group 19001's credentials for 9001;
    the client re-checks every row, so none is reported as an unknown credential of 9001."""
    seed = sandbox_seed()
    seed["accredible"]["accounts"][0]["groups"].append(
        {"id": 19001, "name": "look-alike", "course_name": "Look-alike",
         "course_description": "", "primary_design_id": None})
    emulator.reset(seed)
    emulator.set_options({"loose_filters": True})
    svc = make_provider_services()
    await configure(svc, provider="accredible", external_id=str(GROUP))
    body = {"credential": {"recipient": {"name": "Eve", "email": "eve@example.org"},
                           "group_id": 19001}}
    async with accredible_http(emulator) as client:
        assert (await client.post("credentials", json=body)).status_code == 200
    report = await svc.reconcile.reconcile()
    assert report.drifts == [] and report.remote == 0


# -- Credly ----------------------------------------------------------------------------------
async def test_credly_reconcile_records_state_and_reissues_deleted(fast, emulator):
    await configure(fast)
    fast.intake.ingest_lines(jsonl(*(course_event(u, DEMO) for u in ("ann", "bob", "cat"))),
                             "t")
    await fast.delivery.run()
    ann, bob, cat = (badge_of(u) for u in ("ann", "bob", "cat"))
    emulator.set_credly_badge_state(ann.external_id, "accepted")
    emulator.set_credly_badge_state(bob.external_id, "revoked", "issued by mistake")
    emulator.delete_credly_badge(cat.external_id)

    report = await fast.reconcile.reconcile()
    assert sorted((d.kind, d.username) for d in report.drifts) == [
        ("missing", "cat"), ("revoked_there", "bob"), ("state", "ann")]
    await fast.delivery.run()
    assert badge_of("ann").provider_state == "accepted"
    bob = badge_of("bob")
    assert (bob.status, bob.provider_state) == ("awarded", "revoked")
    assert "revoked at Credly" in bob.last_error
    cat_now = badge_of("cat")
    assert cat_now.external_id not in (None, cat.external_id)
    remote = {b["id"]: b for b in emu_badges(emulator)}
    assert remote[cat_now.external_id]["issuer_earner_id"] == "cat"
    assert [d.kind for d in (await fast.reconcile.reconcile()).drifts] == []


async def test_a_failing_account_is_one_line_and_the_others_go_on(fast, emulator):
    await configure(fast, provider="accredible", external_id=str(GROUP))
    await configure(fast)
    emulator.set_faults({"accredible.credentials.search": {"fail_next": [401] * 10}})
    report = await fast.reconcile.reconcile()
    assert len(report.errors) == 1
    (line,) = report.errors
    assert "Accredible" in line and "Example Accredible" in line and "\n" not in line
    assert ACCREDIBLE_KEY not in line and ACCREDIBLE_KEY[-4:] in line
    assert len(report.accounts) == 2  # Credly still reconciled


# -- the command -----------------------------------------------------------------------------
@pytest.fixture
def served(emulator, monkeypatch, tmp_path, db_url):
    """The emulator on real loopback HTTP and the CLI pointed at it."""
    from badgetui.sandbox.server import start_in_thread

    url, stop = start_in_thread(emulator)
    monkeypatch.setenv("BADGETUI_DB", db_url)
    monkeypatch.setenv("BADGETUI_CREDLY_API_URL", f"{url}/credly/v1/")
    monkeypatch.setenv("BADGETUI_ACCREDIBLE_API_URL", f"{url}/accredible/v1/")
    yield url
    stop()


def test_cli_reconcile_dry_run_json_then_fix(served, emulator, capsys):
    assert main(["provider", "add", "accredible", "--name", "Example Accredible",
                 "--api-key", ACCREDIBLE_KEY]) == 0
    assert main(["sync"]) == 0
    httpx.post(f"{served}/accredible/v1/credentials",
               headers={"Authorization": f"Token token={ACCREDIBLE_KEY}"},
               json={"credential": {"recipient": {"name": "Zed", "email": "zed@example.org"},
                                    "group_id": GROUP}}).raise_for_status()
    capsys.readouterr()
    assert main(["reconcile", "--dry-run", "--json"]) == 0  # no active template: not paged
    assert json.loads(capsys.readouterr().out)["templates"] == 0
    assert main(["reconcile", "--all", "--dry-run", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["dry_run"] is True and body["counts"]["unknown"] == 1
    assert body["drifts"][0]["there"] == "accepted (zed@example.org)"
    assert main(["reconcile", "--all"]) == 0
    out = capsys.readouterr().out
    assert "unknown" in out and "reported only" in out and "fixed 0" in out
