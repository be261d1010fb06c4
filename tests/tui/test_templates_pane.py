"""Templates pane: rows, filters, activation with space (persisted, refused with a reason),
enter opens the editor."""

from __future__ import annotations

from typing import Any

import pytest
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import Checkbox, Input, Select, Static

from badgetui.store.models import Template
from badgetui.tui.app import make_app
from badgetui.tui.screens.template import TemplateScreen
from badgetui.tui.screens.templates import TemplatesPane, TemplateTable
from tests.tui.template_data import seed, seed_events


@pytest.fixture
def ids(services) -> dict[str, int]:
    return seed(services)


async def settle(app: Any, pilot: Any) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def table_of(app: Any) -> TemplateTable:
    return app.query_one(TemplatesPane).query_one(TemplateTable)


def shown(app: Any) -> dict[int, list[str]]:
    table = table_of(app)
    return {int(key.value): [str(getattr(c, "plain", c)) for c in table.get_row(key)]
            for key in table.rows}


def message_line(app: Any) -> str:
    return str(app.query_one(TemplatesPane).query_one("#templates-message", Static).render())


async def focus_row(app: Any, pilot: Any, template_id: int) -> TemplateTable:
    table = table_of(app)
    table.focus()
    table.move_cursor(row=table.get_row_index(str(template_id)))
    await pilot.pause()
    return table


def is_active(template_id: int) -> bool:
    return Template.get_by_id(template_id).is_active


async def test_rows_show_every_template_with_counts(services, ids):
    seed_events(services)
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        rows = shown(app)
        assert set(rows) == set(ids.values())
        assert rows[ids["python"]] == ["Python Basics", "active", "active", "2", "1", "credly",
                                       "Example Academy"]
        assert rows[ids["data"]][0] == "Data [Science] Fundamentals"  # not read as markup
        assert rows[ids["retired"]][1] == "active, stale"
        assert rows[ids["9001"]] == ["Course completion", "active", "-", "1", "0", "accredible",
                                     "Example Accredible"]
        assert "5 templates, 1 active" in message_line(app)


async def test_space_toggles_activation_persists_and_keeps_the_cursor(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        table = await focus_row(app, pilot, ids["draft"])
        draft_row = table.cursor_row
        assert not is_active(ids["draft"])
        # a Credly draft cannot be activated; the Accredible group with a requirement can
        await pilot.press("space")
        await settle(app, pilot)
        assert not is_active(ids["draft"]) and "state is draft" in message_line(app)
        table = await focus_row(app, pilot, ids["9001"])
        row = table.cursor_row
        await pilot.press("space")
        await settle(app, pilot)
        assert is_active(ids["9001"])
        assert shown(app)[ids["9001"]][2] == "active"
        assert table.cursor_row == row and draft_row != row
        assert "Course completion: activated" in message_line(app)
        await pilot.press("space")
        await settle(app, pilot)
        assert not is_active(ids["9001"])
        assert shown(app)[ids["9001"]][2] == "-"
        assert table.cursor_row == row


@pytest.mark.parametrize(("template", "reason"), [
    ("data", "it has no requirements"),
    ("retired", "it is stale"),
])
async def test_activation_refused_with_a_visible_reason(services, ids, template, reason):
    recorded: list[Message] = []
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40), message_hook=recorded.append) as pilot:
        await settle(app, pilot)
        await focus_row(app, pilot, ids[template])
        await pilot.press("space")
        await settle(app, pilot)
        assert not is_active(ids[template])
        assert reason in message_line(app)
        notes = [m.notification for m in recorded if isinstance(m, Notify)]
        assert [(n.severity, reason in n.message) for n in notes] == [("warning", True)]
        assert shown(app)[ids[template]][2] == "-"


async def test_filters_narrow_the_rows(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.query_one(TemplatesPane)
        assert len(shown(app)) == 5
        await pilot.press("t", "slash")
        assert app.focused is pane.query_one("#templates-filter", Input)
        await pilot.press(*"badge")
        await settle(app, pilot)
        assert set(shown(app)) == {ids["draft"], ids["retired"]}
        pane.query_one("#templates-filter", Input).value = ""
        pane.query_one("#templates-provider", Select).value = "accredible"
        await settle(app, pilot)
        assert set(shown(app)) == {ids["9001"]}
        pane.query_one("#templates-provider", Select).value = "credly"
        pane.query_one("#templates-state", Select).value = "draft"
        await settle(app, pilot)
        assert set(shown(app)) == {ids["draft"]}
        pane.query_one("#templates-state", Select).value = "stale"
        await settle(app, pilot)
        assert set(shown(app)) == {ids["retired"]}
        pane.query_one("#templates-state", Select).clear()
        pane.query_one("#templates-active", Select).value = True
        await settle(app, pilot)
        assert set(shown(app)) == {ids["python"]}
        pane.query_one("#templates-active", Select).value = False
        await settle(app, pilot)
        assert set(shown(app)) == {ids["data"], ids["draft"], ids["retired"]}


async def test_enter_opens_the_template_editor(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await focus_row(app, pilot, ids["python"])
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TemplateScreen)
        assert app.screen.template_id == ids["python"]
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, TemplateScreen)


async def test_the_tab_key_focuses_the_table_so_space_toggles(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("p", "t")
        await settle(app, pilot)
        assert app.focused is table_of(app)


async def test_activation_offers_the_backfill_preview_then_runs_it(services, ids):
    """The Accredible group (one rule-less requirement: any course grade update) is activated
    after two events were recorded: the console offers their replay with its preview."""
    from badgetui.store.models import Badge, Learner
    from badgetui.tui.screens.backfill_dialog import BackfillScreen

    seed_events(services)
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await focus_row(app, pilot, ids["9001"])
        await pilot.press("space")
        await settle(app, pilot)
        assert is_active(ids["9001"])
        screen = app.screen
        assert isinstance(screen, BackfillScreen)
        preview = str(screen.query_one("#backfill-result", Static).render())
        assert "2 recorded events would be replayed" in preview
        assert "2 would complete and be awarded: ann, bob" in preview
        assert not Badge.select().where(Badge.template == ids["9001"]).exists()
        screen.query_one("#deliver", Checkbox).value = False  # no provider in this test
        await pilot.click("#run")
        await settle(app, pilot)
        await settle(app, pilot)
        done = str(screen.query_one("#backfill-result", Static).render())
        assert "2 recorded events replayed" in done and "2 complete and be awarded" in done
        held = sorted(b.learner.username for b in Badge.select().join(Learner).where(
            Badge.template == ids["9001"]))
        assert held == ["ann", "bob"]
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, BackfillScreen)


async def test_no_offer_when_nothing_was_recorded(services, ids):
    from badgetui.tui.screens.backfill_dialog import BackfillScreen

    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await focus_row(app, pilot, ids["9001"])
        await pilot.press("space")
        await settle(app, pilot)
        assert is_active(ids["9001"]) and not isinstance(app.screen, BackfillScreen)
