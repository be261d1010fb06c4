"""Snapshots of the Providers pane over fixed data and a frozen clock.

Regenerate deliberately (after a Textual upgrade or a wanted change) with
`pytest tests/tui/test_snapshots_providers.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from badgetui.sandbox import Emulator
from badgetui.settings import Settings
from badgetui.tui.app import BadgeApp, make_app
from tests.conftest import CREDLY_ORG, FakeClock, sandbox_seed

SIZE = (120, 36)


async def _accounts(app: BadgeApp) -> None:
    services = app.services
    await services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key")
    await services.accounts.add_accredible("Example Accredible", "sandbox-accredible-key")
    await services.accounts.add_accredible("Second Accredible", "sandbox-accredible-key-2")
    await services.sync.sync(None)


@pytest.fixture
def fixed_app(tmp_path, monkeypatch) -> Iterator[Callable[[], tuple[BadgeApp, Emulator]]]:
    """Three synced accounts; the Credly key is 165 days old, so it expires in 15 days."""
    monkeypatch.chdir(tmp_path)  # the status line shows the database as "t.db"
    built: list[BadgeApp] = []

    def build() -> tuple[BadgeApp, Emulator]:
        clock = FakeClock()
        seed = sandbox_seed()
        seed["credly"]["organizations"][0]["key_created_at"] = "2026-05-20T12:00:00Z"
        emulator = Emulator(seed, clock=clock, rng_seed=1)
        settings = Settings(db="t.db", credly_api_url="http://sandbox/credly/v1/",
                            accredible_api_url="http://sandbox/accredible/v1/",
                            provider_timeout=2)
        app = make_app(settings, transport=emulator.transport(), clock=clock)
        app.animation_level = "none"
        asyncio.run(_accounts(app))
        built.append(app)
        return app, emulator

    yield build
    for app in built:
        app.services.close()


async def _settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_providers_pane(snap_compare, fixed_app):
    app, _ = fixed_app()

    async def show_credly(pilot: Any) -> None:
        await pilot.press("p")
        await _settle(pilot)
        await pilot.press("down", "down")  # the Credly organization, with its key warning
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=show_credly)


def test_providers_removal_confirmation(snap_compare, fixed_app):
    app, emulator = fixed_app()
    emulator.reset(sandbox_seed(groups=1))  # groups 9002 and 9003 gone from Accredible

    async def sync_first(pilot: Any) -> None:
        await pilot.press("p")
        await _settle(pilot)
        await pilot.press("s")  # Example Accredible is the first row
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=sync_first)
