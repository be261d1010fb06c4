"""Snapshots of the live panes (Progress, Badges, Events) and their dialogs.

The data is the reproducible demo world (badgetui/demo_world.py: a clock that moves only when
told, the emulator in process, seeded ids, scripted provider failures), reached through the
same tour stops as scripts/screenshots.py, so these snapshots and the README pictures agree.
The database path is relative (the status line shows it). Regenerate deliberately with
`pytest tests/tui/test_snapshots_live.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from badgetui.demo_world import DemoWorld, build_world
from badgetui.tui.tour import SIZE, arrive, tour_app


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoWorld]:
    monkeypatch.chdir(tmp_path)
    built = build_world(tmp_path)
    yield built
    built.close()


def shows(snap_compare: Any, world: DemoWorld, stop: str) -> bool:
    async def run_before(pilot: Any) -> None:
        await arrive(pilot, world, stop)

    return snap_compare(tour_app(world), terminal_size=SIZE, run_before=run_before)


def test_progress_pane(world, snap_compare):
    assert shows(snap_compare, world, "progress")


def test_progress_detail(world, snap_compare):
    """Filtered to one template's incomplete learners, then enter on the first."""
    assert shows(snap_compare, world, "progress-detail")


def test_badges_pane(world, snap_compare):
    assert shows(snap_compare, world, "badges")


def test_why_a_penalty_revoked_a_badge(world, snap_compare):
    assert shows(snap_compare, world, "why")


def test_revoke_dialog_with_a_reason(world, snap_compare):
    assert shows(snap_compare, world, "revoke")


def test_events_pane(world, snap_compare):
    assert shows(snap_compare, world, "events")


def test_ingest_dialog_after_an_ingest(world, snap_compare):
    assert shows(snap_compare, world, "ingest")
