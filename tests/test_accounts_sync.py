"""Provider accounts and sync against the emulator (in process, over an httpx ASGI transport)."""

from __future__ import annotations

import json

import pytest

from badgetui.services.common import ServiceError
from badgetui.services.queries import list_badges
from badgetui.store.models import (
    AuditLog,
    ConfigBackup,
    DataRule,
    Penalty,
    ProviderAccount,
    Requirement,
    Template,
)
from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed
from tests.helpers import (
    DEMO,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    template_config,
)

CREDLY_KEY = "sandbox-credly-key"
ACCREDIBLE_KEY = "sandbox-accredible-key"


async def add_all(psvc) -> tuple[int, int, int]:
    credly = await psvc.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    acc1 = await psvc.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    acc2 = await psvc.accounts.add_accredible("Second Accredible", ACCREDIBLE_KEY + "-2")
    return credly.id, acc1.id, acc2.id


async def test_add_credly_stores_the_organization_name_and_masks_the_key(psvc):
    view = await psvc.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    assert view.name == "Example Academy"
    assert view.api_key == "…-key" and CREDLY_KEY not in repr(view)
    stored = ProviderAccount.get_by_id(view.id)
    assert stored.api_key == CREDLY_KEY and stored.key_created_at is not None
    assert AuditLog.select().where(AuditLog.action == "account.add").count() == 1
    assert CREDLY_KEY not in AuditLog.get().detail


@pytest.mark.parametrize(
    ("org", "key", "expected"),
    [
        (CREDLY_ORG, "wrong-key-5678", "refused the API key …5678"),
        ("00000000-0000-0000-0000-000000000000", CREDLY_KEY, "unknown organization"),
    ],
)
async def test_add_credly_refused_in_one_line(psvc, org, key, expected):
    with pytest.raises(ServiceError) as info:
        await psvc.accounts.add_credly(org, key)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "wrong-key-5678" not in message
    assert ProviderAccount.select().count() == 0


async def test_add_unreachable_host_says_so(make_services):
    services = make_services(credly_api_url="http://127.0.0.1:9/credly/v1/", provider_timeout=1.0)
    with pytest.raises(ServiceError, match="cannot reach Credly"):
        await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    assert ProviderAccount.select().count() == 0


async def test_add_accredible_checks_the_key(psvc):
    view = await psvc.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    assert view.provider == "accredible" and view.api_key == "…-key"
    with pytest.raises(ServiceError, match="refused the API key …nope"):
        await psvc.accounts.add_accredible("Other", "bad-key-nope")
    assert ProviderAccount.select().count() == 1


async def test_credly_key_expiry_warning_from_30_days(psvc, clock):
    await psvc.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    assert [s.warning for s in psvc.accounts.key_status()] == [""]
    clock.advance(151 * 86400)
    (status,) = psvc.accounts.key_status()
    assert "expires in 29 days" in status.warning and "…-key" in status.warning
    clock.advance(30 * 86400)
    assert "expired on" in psvc.accounts.key_status()[0].warning


async def test_credly_sync_creates_inactive_then_updates_and_marks_stale(psvc, emulator):
    account_id, _, _ = await add_all(psvc)
    dry = await psvc.sync.sync(account_id, dry_run=True)
    assert len(dry[0].plan.create) == 5 and not dry[0].applied
    assert Template.select().count() == 0

    pages: list[tuple[str, int, int]] = []
    (result,) = await psvc.sync.sync(account_id, on_progress=lambda *p: pages.append(p))
    assert result.applied and len(result.plan.create) == 5
    assert pages and pages[-1][0] == "pages" and pages[-1][1] == pages[-1][2]
    rows = list(Template.select().where(Template.provider == "credly"))
    assert len(rows) == 5 and not any(t.is_active for t in rows)
    assert ProviderAccount.get_by_id(account_id).last_sync_result.startswith("5 new")

    first = credly_templates(5)[0]
    emulator.credly_template(CREDLY_ORG, "change", {**first, "name": "Renamed badge"})
    emulator.credly_template(CREDLY_ORG, "archive", credly_templates(5)[1])
    (result,) = await psvc.sync.sync(account_id)
    assert [t.external_id for t, _ in result.plan.update] == [first["id"]]
    assert [ext for ext, _ in result.plan.stale] == [credly_templates(5)[1]["id"]]
    assert Template.get(Template.external_id == first["id"]).name == "Renamed badge"
    stale = Template.get(Template.external_id == credly_templates(5)[1]["id"])
    assert stale.stale and not stale.deleted  # never deleted
    psvc.config.import_text(config_text(template_config(
        stale.external_id, [requirement("r", rule("is_passing", "true"))], active=False)))
    with pytest.raises(ServiceError, match="stale"):
        psvc.templates.set_active(stale.id, True)


async def test_accredible_removal_is_scoped_backed_up_and_restorable(psvc, emulator):
    _, acc1, acc2 = await add_all(psvc)
    await psvc.sync.sync()
    assert Template.select().where(Template.provider == "accredible").count() == 4
    shared = list(Template.select().where(Template.external_id == "9001"))
    assert len(shared) == 2  # the same group id in two accounts: two templates
    psvc.config.import_text(json.dumps({"version": 1, "templates": [
        {**template_config("9001", [requirement("demo", rule("course.course_key", DEMO))],
                           [penalty(["demo"], rule("is_passing", "false"))]),
         "provider": "accredible", "account": "Example Accredible"},
        {**template_config("9001", [requirement("mine", rule("is_passing", "true"))]),
         "provider": "accredible", "account": "Second Accredible"},
    ]}))
    assert Requirement.select().count() == 2

    seed = sandbox_seed()
    first = seed["accredible"]["accounts"][0]
    first["groups"] = [g for g in first["groups"] if g["id"] != 9001]
    emulator.reset(seed)

    dry = await psvc.sync.sync(acc1, dry_run=True)
    assert [ext for ext, _, _ in dry[0].plan.remove] == ["9001"]
    assert ConfigBackup.select().count() == 0 and Requirement.select().count() == 2

    (result,) = await psvc.sync.sync(acc1)
    assert result.backup_id is not None
    gone = Template.get((Template.account == acc1) & (Template.external_id == "9001"))
    assert gone.deleted and not gone.is_active
    kept = Template.get((Template.account == acc2) & (Template.external_id == "9001"))
    assert not kept.deleted and kept.is_active
    assert [r.key for r in Requirement.select()] == ["mine"]
    assert Penalty.select().count() == 0

    restored = psvc.sync.restore_backup(result.backup_id)
    assert restored == ["accredible:9001"]
    assert sorted(r.key for r in Requirement.select()) == ["demo", "mine"]
    assert Penalty.select().count() == 1 and DataRule.select().count() == 3
    back = Template.get((Template.account == acc1) & (Template.external_id == "9001"))
    assert back.stale and not back.deleted and not back.is_active
    assert psvc.sync.backups()[0]["templates"] == ["9001"]


async def test_one_failing_account_does_not_stop_the_others(psvc):
    await add_all(psvc)
    ProviderAccount.update(api_key="revoked-key-0000").where(
        ProviderAccount.provider == "credly").execute()
    results = await psvc.sync.sync()
    errors = [r.error for r in results if r.error]
    assert len(errors) == 1 and "…0000" in errors[0] and "revoked-key-0000" not in errors[0]
    assert Template.select().where(Template.provider == "accredible").count() == 4


async def test_seven_pages_of_credly_templates(make_provider_services, emulator):
    seed = sandbox_seed()
    seed["credly"]["organizations"][0]["badge_templates"] = credly_templates(320)
    emulator.reset(seed)
    services = make_provider_services()
    account = await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    pages: list[tuple[str, int, int]] = []
    (result,) = await services.sync.sync(account.id, on_progress=lambda *p: pages.append(p))
    assert len(result.plan.create) == 320
    assert Template.select().count() == 320
    assert max(total for _, _, total in pages) == 7


async def test_remove_account_refused_while_it_holds_badges(psvc):
    account_id, _, _ = await add_all(psvc)
    await psvc.sync.sync(account_id)
    ext = credly_templates(1)[0]["id"]
    psvc.config.import_text(config_text(template_config(
        ext, [requirement("demo", rule("course.course_key", DEMO))])))
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    assert [b.status for b in list_badges()] == ["awarded"]
    with pytest.raises(ServiceError, match="holds 1 awarded badges"):
        psvc.accounts.remove(CREDLY_ORG)
    assert ProviderAccount.select().where(ProviderAccount.id == account_id).exists()
    psvc.accounts.remove(CREDLY_ORG, force=True)
    assert not ProviderAccount.select().where(ProviderAccount.id == account_id).exists()
    assert Template.select().where(Template.provider == "credly").count() == 0
