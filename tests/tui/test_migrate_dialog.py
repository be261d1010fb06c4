"""Providers pane: the empty state offers the migration from Open edX Credentials, and the
dialog plans (writing nothing), then migrates in one step; the panes show what came in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Button, Checkbox, Input

from badgetui.store.models import Badge, DeliveryJob, ProviderAccount, Template
from badgetui.tui.screens.migrate_dialog import MigrateScreen
from badgetui.tui.screens.providers import AccountTable
from tests.credentials_db import sqlite_credentials
from tests.test_migrate import build_site
from tests.tui.test_providers_pane import Console, make_console, open_pane, run, settle


@pytest.fixture
async def console(tmp_path, clock) -> AsyncIterator[Console]:
    made = make_console(tmp_path, clock)
    yield made
    made.services.close()



async def test_the_empty_providers_pane_migrates_a_credentials_site(console, tmp_path: Path):
    with sqlite_credentials(tmp_path / "credentials.sqlite3") as db:
        build_site(db)
        async with run(console) as pilot:
            await open_pane(console, pilot)
            assert "Press m to migrate" in console.text("#account-detail")
            await pilot.press("m")
            await pilot.pause()
            screen = console.app.screen
            assert isinstance(screen, MigrateScreen)
            assert screen.query_one("#apply", Button).disabled  # nothing planned yet
            screen.query_one("#source", Input).value = db.url
            await pilot.click("#plan")
            await settle(pilot)
            plan = console.text("#migrate-result")
            assert "plan (dry run: nothing written)" in plan and "early-award (1)" in plan
            assert "sandbox-credly-key" not in plan and "…-key" in plan
            assert ProviderAccount.select().count() == 0  # the plan wrote nothing
            # Changing a choice needs a new plan before Migrate applies it.
            screen.query_one("#revoke-early", Checkbox).value = True
            await pilot.pause()
            assert screen.query_one("#apply", Button).disabled
            await pilot.click("#plan")
            await settle(pilot)
            assert "revoked (--revoke-early-awards)" in console.text("#migrate-result")
            await pilot.click("#apply")
            await settle(pilot)
            assert "migrated in one transaction" in console.text("#migrate-result")
            await pilot.press("escape")
            await settle(pilot)
            await settle(pilot)
            table = console.app.query_one(AccountTable)
            assert table.row_count == 2
            assert Template.select().count() == 4
            bob = [b for b in Badge.select() if b.learner.username == "bob"]
            assert [b.status for b in bob] == ["revoked"]
            assert DeliveryJob.select().count() == 3  # eve's issue, dan's and bob's revokes


async def test_a_bad_source_is_one_line_in_the_dialog(console, tmp_path: Path):
    async with run(console) as pilot:
        await open_pane(console, pilot)
        await pilot.press("m")
        await pilot.pause()
        console.app.screen.query_one("#source", Input).value = f"sqlite:///{tmp_path}/none.db"
        await pilot.click("#plan")
        await settle(pilot)
        text = console.text("#migrate-result")
        assert text.startswith("cannot open sqlite:///") and "no such file" in text
        assert "\n" not in text
        assert console.app.screen.query_one("#apply", Button).disabled
