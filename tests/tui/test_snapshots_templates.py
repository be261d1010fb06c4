"""Snapshots of the Templates pane, the template editor, a requirement form and the rule tester.

Fixed data (tests/tui/template_data.py), a frozen clock, a relative database path (the status
line shows it), no animations and no blinking cursor. Regenerate with --snapshot-update and look.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, TextArea

from badgetui.domain.events import COURSE_PASSING
from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.tui.app import BadgeApp, make_app
from badgetui.tui.messages import OpenTemplate
from badgetui.tui.screens.form_parts import RuleRow
from badgetui.tui.screens.templates import TemplateTable
from tests.conftest import FakeClock
from tests.tui.template_data import seed, seed_events

SIZE = (120, 36)


@pytest.fixture
def fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Services, dict]]:
    monkeypatch.chdir(tmp_path)
    services = Services.open(Settings(db="badgetui.db"), clock=FakeClock())
    ids = seed(services)
    seed_events(services)
    services.editor.save_penalty(ids["python"], None, event_type=COURSE_PASSING,
                                 requirements=["other"], description="no rules: lint warns")
    yield services, ids
    services.close()


def app_for(services: Services) -> BadgeApp:
    app = make_app(services.settings, services=services)
    app.animation_level = "none"
    return app


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def still(app: Any) -> None:
    """No blinking cursors in a picture."""
    for widget in app.screen.query("Input, TextArea"):
        if isinstance(widget, (Input, TextArea)):
            widget.cursor_blink = False


async def open_python(pilot: Any, template_id: int) -> None:
    await settle(pilot)
    pilot.app.post_message(OpenTemplate(template_id))
    await settle(pilot)


def test_templates_pane(fixed, snap_compare):
    services, ids = fixed

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        table = pilot.app.query_one(TemplateTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(str(ids["python"])))
        await settle(pilot)

    assert snap_compare(app_for(services), terminal_size=SIZE, run_before=run_before)


def test_template_editor(fixed, snap_compare):
    services, ids = fixed

    async def run_before(pilot: Any) -> None:
        await open_python(pilot, ids["python"])
        pilot.app.screen.query_one("#penalties", DataTable).focus()
        await settle(pilot)

    assert snap_compare(app_for(services), terminal_size=SIZE, run_before=run_before)


def test_requirement_form_with_an_invalid_boolean(fixed, snap_compare):
    services, ids = fixed

    async def run_before(pilot: Any) -> None:
        await open_python(pilot, ids["python"])
        await pilot.press("e")
        await settle(pilot)
        row = pilot.app.screen.query(RuleRow).first()
        row.query_one(".rule-value", Input).value = "maybe"
        await pilot.press("ctrl+s")
        await settle(pilot)
        still(pilot.app)

    assert snap_compare(app_for(services), terminal_size=SIZE, run_before=run_before)


def test_rule_tester_with_a_picked_event(fixed, snap_compare):
    services, ids = fixed

    async def run_before(pilot: Any) -> None:
        await open_python(pilot, ids["python"])
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("ctrl+l", "down", "enter")
        await settle(pilot)
        pilot.app.screen.query_one("#verdicts", DataTable).focus()
        still(pilot.app)
        await settle(pilot)

    assert snap_compare(app_for(services), terminal_size=SIZE, run_before=run_before)
