"""Providers pane: accounts through modal forms, Sync with progress and removal confirmation.

Every test drives the real console over the in-process emulator (httpx ASGI transport) and
asserts on the database through the services afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from textual.message import Message
from textual.widgets import Button, Input, RadioButton, Static
from textual.worker import WorkerFailed

from badgetui.sandbox import Emulator
from badgetui.services import Services
from badgetui.services.common import ServiceError
from badgetui.services.sync import SyncPlan, SyncResult
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import AuditLog, ProviderAccount
from badgetui.tui.app import BadgeApp, make_app
from badgetui.tui.messages import RunSync
from badgetui.tui.screens.account_form import AccountFormScreen, RemoveAccountScreen
from badgetui.tui.screens.providers import (
    AccountTable,
    ProvidersPane,
    result_lines,
    short_result,
)
from badgetui.tui.screens.sync_dialogs import ConfirmRemovalsScreen, plan_text
from tests.conftest import CREDLY_ORG, sandbox_seed
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config

CREDLY_KEY = "sandbox-credly-key"
ACCREDIBLE_KEY = "sandbox-accredible-key"
SIZE = (120, 40)


@dataclass
class Console:
    app: BadgeApp
    services: Services
    emulator: Emulator
    messages: list[Message]

    @property
    def pane(self) -> ProvidersPane:
        return self.app.query_one(ProvidersPane)

    def text(self, selector: str) -> str:
        return str(self.app.screen.query_one(selector, Static).render())


def make_console(tmp_path, clock) -> Console:
    """The console on a new database over the in-process emulator."""
    emulator = Emulator(sandbox_seed(), clock=clock, rng_seed=1)
    settings = Settings(db=str(tmp_path / "t.db"), credly_api_url="http://sandbox/credly/v1/",
                        accredible_api_url="http://sandbox/accredible/v1/", provider_timeout=2)
    app = make_app(settings, transport=emulator.transport(), clock=clock)
    return Console(app, app.services, emulator, [])


@pytest.fixture
async def console(tmp_path, clock) -> AsyncIterator[Console]:
    made = make_console(tmp_path, clock)
    yield made
    made.services.close()


async def settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_pane(console: Console, pilot: Any) -> None:
    await pilot.press("p")
    await settle(pilot)


def run(console: Console) -> Any:
    return console.app.run_test(size=SIZE, message_hook=console.messages.append)


async def fill_form(pilot: Any, identifier: str | None, key: str, *, click: bool = False) -> None:
    """Fill the account form and submit it (Enter in the key field, or the Save button)."""
    screen = pilot.app.screen
    assert isinstance(screen, AccountFormScreen)
    if identifier is not None:
        screen.query_one("#identifier", Input).value = identifier
    field = screen.query_one("#api-key", Input)
    field.value = key
    if click:
        await pilot.click("#save")
    else:
        field.focus()
        await pilot.press("enter")
    await settle(pilot)


def notifications(console: Console) -> list[str]:
    return [m.notification.message for m in console.messages  # type: ignore[attr-defined]
            if type(m).__name__ == "Notify"]


# -- add / edit / remove ----------------------------------------------------------------------
async def test_add_a_credly_organization_through_the_form(console):
    async with run(console) as pilot:
        await open_pane(console, pilot)
        assert "No provider accounts yet" in console.text("#account-detail")
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(console.app.screen, AccountFormScreen)
        await fill_form(pilot, CREDLY_ORG, CREDLY_KEY, click=True)
        assert not isinstance(console.app.screen, AccountFormScreen)
        table = console.pane.query_one(AccountTable)
        assert table.row_count == 1
        assert "Example Academy" in console.text("#account-detail")
    accounts = console.services.templates.accounts()
    assert [(a.provider, a.identifier, a.name) for a in accounts] == [
        ("credly", CREDLY_ORG, "Example Academy")]
    assert accounts[0].key_created_at is not None
    assert ProviderAccount.get().api_key == CREDLY_KEY


async def test_add_an_accredible_configuration_through_the_form(console):
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.click("#providers-add")
        await pilot.pause()
        await pilot.click(RadioButton.__name__ + "#accredible")
        await pilot.pause()
        await fill_form(pilot, "Example Accredible", ACCREDIBLE_KEY)
        assert console.pane.query_one(AccountTable).row_count == 1
    [account] = console.services.templates.accounts()
    assert (account.provider, account.name) == ("accredible", "Example Accredible")


async def test_a_wrong_key_is_a_message_in_the_form_and_stores_nothing(console):
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("a")
        await pilot.pause()
        await fill_form(pilot, CREDLY_ORG, "wrong-key-5678")
        form = console.app.screen
        assert isinstance(form, AccountFormScreen)  # still open, the app did not crash
        error = console.text("#form-error")
        assert "refused the API key" in error and "5678" in error
        assert "wrong-key-5678" not in error
        assert not form.query_one("#save", Button).disabled  # ready for another try
        # a malformed organization id is refused before any provider call
        await fill_form(pilot, "not-a-uuid", CREDLY_KEY)
        assert "is not an organization ID" in console.text("#form-error")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(console.app.screen.query_one(ProvidersPane), ProvidersPane)
        assert console.app.is_running
    assert console.services.templates.accounts() == []
    assert ProviderAccount.select().count() == 0


async def test_edit_changes_the_key_only_after_the_provider_accepts_it(console):
    view = await console.services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    ProviderAccount.update(paused_reason="Accredible refused the key").execute()
    async with run(console) as pilot:
        await open_pane(console, pilot)
        assert "delivery paused" in console.text("#account-detail")
        await pilot.press("k")
        await pilot.pause()
        await fill_form(pilot, None, "bad-key-nope")
        assert "refused the API key" in console.text("#form-error")
        assert ProviderAccount.get_by_id(view.id).api_key == ACCREDIBLE_KEY
        await fill_form(pilot, None, ACCREDIBLE_KEY + "-2")
        assert not isinstance(console.app.screen, AccountFormScreen)
        assert "delivery paused" not in console.text("#account-detail")
    stored = ProviderAccount.get_by_id(view.id)
    assert stored.api_key == ACCREDIBLE_KEY + "-2" and stored.paused_reason == ""
    assert AuditLog.select().where(AuditLog.action == "account.key").count() == 1
    assert (ACCREDIBLE_KEY + "-2") not in AuditLog.get(AuditLog.action == "account.key").detail


async def test_enter_on_a_row_opens_the_key_form(console):
    await console.services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(console.app.screen, AccountFormScreen)
        assert console.app.screen.account is not None


async def test_remove_an_account_after_confirmation(console):
    await console.services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(console.app.screen, RemoveAccountScreen)
        await pilot.press("escape")  # cancel keeps it
        await settle(pilot)
        assert len(console.services.templates.accounts()) == 1
        await pilot.press("delete")
        await pilot.pause()
        await pilot.click("#remove")
        await settle(pilot)
        assert not isinstance(console.app.screen, RemoveAccountScreen)
        assert console.pane.query_one(AccountTable).row_count == 0
    assert console.services.templates.accounts() == []


async def test_remove_is_refused_while_badges_are_awarded_unless_forced(console):
    services = console.services
    await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    await services.sync.sync(None)
    first = services.templates.list()[0].external_id
    services.config.import_text(config_text(template_config(first, [
        requirement("demo", rule("course.course_key", DEMO))])))
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "test")
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("d")
        await pilot.pause()
        await pilot.click("#remove")
        await settle(pilot)
        dialog = console.app.screen
        assert isinstance(dialog, RemoveAccountScreen)
        assert "holds 1 awarded badges" in console.text("#form-error")
        assert len(services.templates.accounts()) == 1
        force = dialog.query_one("#force", Button)
        assert force.display and not force.disabled
        await pilot.click("#force")
        await settle(pilot)
        assert not isinstance(console.app.screen, RemoveAccountScreen)
    assert services.templates.accounts() == []


# -- sync -------------------------------------------------------------------------------------
async def test_sync_all_brings_templates_in_inactive(console):
    services = console.services
    await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    await services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.click("#providers-sync-all")
        await settle(pilot)
        assert not console.pane.syncing
        result = console.text("#sync-result")
        assert "credly Example Academy: 5 new" in result
        assert "accredible Example Accredible: 3 new" in result
        table = console.pane.query_one(AccountTable)
        assert [str(c) for c in table.get_column("templates")] == ["3", "5"]
    templates = services.templates.list()
    assert len(templates) == 8
    assert not any(t.active for t in templates)
    assert any("5 new" in n for n in notifications(console))
    assert all(a.last_sync_at for a in services.templates.accounts())


async def test_sync_key_syncs_only_the_selected_account_and_shows_progress(console):
    services = console.services
    await services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("down")  # accredible first, then credly
        await pilot.press("s")
        await settle(pilot)
    assert {t.provider for t in services.templates.list()} == {"credly"}
    progressed = [m for m in console.messages if type(m).__name__ == "SyncProgressed"]
    assert any(m.stage == "pages" and m.done == m.total for m in progressed)


async def test_palette_sync_goes_through_the_pane(console):
    view = await console.services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    async with run(console) as pilot:
        console.app.post_message(RunSync(view.id))
        await pilot.pause()
        await settle(pilot)
        assert console.app.query_one("#tabs").active == "providers"
    assert len(console.services.templates.list()) == 5


async def test_sync_without_accounts_says_so(console):
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("S")  # dimmed in the footer: nothing happens
        await settle(pilot)
        assert not console.pane.syncing
        console.pane.start_sync(None)
        await settle(pilot)
        assert not console.pane.syncing
    assert any("no provider accounts" in n for n in notifications(console))


async def test_a_failing_sync_worker_goes_through_the_error_route_and_recovers(console):
    await console.services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        console.pane.start_sync(999)  # an account removed meanwhile
        with pytest.raises(WorkerFailed):
            await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        assert not console.pane.syncing
        assert "failed" in console.text("#sync-result")
        await pilot.press("s")  # a new sync can start
        await settle(pilot)
        assert console.app.is_running
    assert any("no provider account 999" in n for n in notifications(console))
    assert len(console.services.templates.list()) == 5


async def test_an_unreachable_provider_is_a_failed_result_not_a_crash(console):
    await console.services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    await console.services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    console.emulator.set_faults({"credly.templates.list": {"fail_next": [401]}})
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("S")
        await settle(pilot)
        result = console.text("#sync-result")
        assert "credly Example Academy: FAILED" in result
        assert "accredible Example Accredible: 3 new" in result
    [credly] = [a for a in console.services.templates.accounts() if a.provider == "credly"]
    assert credly.last_sync_result.startswith("failed")
    assert {t.provider for t in console.services.templates.list()} == {"accredible"}


async def removal_setup(console: Console) -> int:
    """An Accredible account synced with 3 groups; then two groups vanish at Accredible."""
    services = console.services
    view = await services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    await services.sync.sync(view.id)
    assert len(services.templates.list()) == 3
    console.emulator.reset(sandbox_seed(groups=1))
    return view.id


def live_groups(services: Services) -> list[str]:
    return sorted(t.external_id for t in services.templates.list() if not t.deleted)


async def test_removals_wait_for_confirmation_and_cancel_changes_nothing(console):
    await removal_setup(console)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("s")
        await settle(pilot)
        dialog = console.app.screen
        assert isinstance(dialog, ConfirmRemovalsScreen)
        plan = str(dialog.query_one("#plan-lines Static", Static).render())
        assert "9002" in plan and "9003" in plan and "removed" in plan
        assert console.pane.syncing
        assert live_groups(console.services) == ["9001", "9002", "9003"]
        await pilot.click("#keep")
        await settle(pilot)
        assert not isinstance(console.app.screen, ConfirmRemovalsScreen)
        assert not console.pane.syncing
        assert "nothing applied" in console.text("#sync-result")
    assert live_groups(console.services) == ["9001", "9002", "9003"]
    assert console.services.sync.backups() == []


async def test_confirmed_removals_are_applied_with_a_backup(console):
    await removal_setup(console)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(console.app.screen, ConfirmRemovalsScreen)
        await pilot.click("#apply")
        await settle(pilot)
        assert not console.pane.syncing
        result = console.text("#sync-result")
        assert "2 removed" in result and "backup" in result
    assert live_groups(console.services) == ["9001"]
    [backup] = console.services.sync.backups()
    assert sorted(backup["templates"]) == ["9002", "9003"]


def test_short_result_keeps_what_changed():
    assert short_result("3 new, 0 updated, 0 removed, 0 unchanged") == "3 new"
    assert short_result("0 new, 0 updated, 0 stale, 5 unchanged") == "no changes"
    assert short_result("failed: cannot reach Credly") == "failed"
    assert short_result("") == ""


def test_long_plans_are_cut_but_removals_always_shown():
    created = [SyncedTemplate(f"t{n}", f"Template {n}") for n in range(100)]
    plan = SyncPlan(1, "Example", "accredible", created, create=created,
                    remove=[("g1", "Gone", 2)])
    lines = plan_text(plan)
    assert lines[0].startswith("accredible Example: 100 new")
    assert lines[1] == "  - g1 Gone: gone from Accredible, removed with 2 requirements"
    assert lines[-1] == "  ... and 80 more changes" and len(lines) == 23
    shown = result_lines(SyncResult(plan, True, backup_id=4), limit=10)
    assert len(shown) == 13 and shown[-2] == "  ... and 91 more"
    assert "badgetui backup restore 4" in shown[-1]


async def test_update_key_service_checks_a_credly_key_and_lifts_the_pause(console):
    """The service behind the edit form, on the Credly path (the form test uses Accredible)."""
    services = console.services
    view = await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    ProviderAccount.update(paused_reason="Credly refused the key").execute()
    with pytest.raises(ServiceError, match="refused the API key …5678"):
        await services.accounts.update_key(view.id, "wrong-key-5678")
    assert ProviderAccount.get_by_id(view.id).paused_reason == "Credly refused the key"
    updated = await services.accounts.update_key(view.id, CREDLY_KEY)
    assert updated.paused_reason == "" and updated.key_created_at is not None
    assert services.accounts.template_counts() == {}
    await services.sync.sync(view.id)
    assert services.accounts.template_counts() == {view.id: (5, 0)}


# -- key rotation (R and the command palette) -------------------------------------------------
async def test_rotate_a_credly_key_from_the_pane_and_from_the_palette(console):
    services = console.services
    view = await services.accounts.add_credly(CREDLY_ORG, CREDLY_KEY)
    await services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    ProviderAccount.update(paused_reason="Credly refused the key").where(
        ProviderAccount.id == view.id).execute()
    async with run(console) as pilot:
        await open_pane(console, pilot)
        rows = [r.view.provider for r in console.pane.rows.values()]
        console.pane.query_one(AccountTable).move_cursor(row=rows.index("credly"))
        await pilot.pause()
        await pilot.press("R")
        await settle(pilot)
        await settle(pilot)
        first = ProviderAccount.get_by_id(view.id)
        assert first.api_key not in (CREDLY_KEY, "") and first.paused_reason == ""
        [org] = console.emulator.state()["credly"]["organizations"]
        assert org["live_keys"] == ["…" + first.api_key[-4:]]
        assert first.key_expires_at is not None
        expiry = org["key_expires_at"][:10]
        assert any("key rotated" in n and expiry in n for n in notifications(console))

        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Rotate key of Example Academy")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        await settle(pilot)
        second = ProviderAccount.get_by_id(view.id)
        assert second.api_key not in (CREDLY_KEY, first.api_key)
    [org] = console.emulator.state()["credly"]["organizations"]
    assert org["live_keys"] == ["…" + second.api_key[-4:]]
    assert [a.action for a in AuditLog.select() if a.action.startswith("account.rotate")] == [
        "account.rotate", "account.rotate"]


async def test_rotate_is_not_offered_for_accredible(console):
    await console.services.accounts.add_accredible("Example Accredible", ACCREDIBLE_KEY)
    async with run(console) as pilot:
        await open_pane(console, pilot)
        assert console.pane.check_action("rotate", ()) is None
        commands = [c.title for c in console.app.get_system_commands(console.app.screen)]
        assert not any(t.startswith("Rotate key") for t in commands)
        await pilot.press("R")
        await settle(pilot)
    assert ProviderAccount.get().api_key == ACCREDIBLE_KEY
