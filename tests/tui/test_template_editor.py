"""Template editor: details, requirement and penalty forms, deletions, the rule tester."""

from __future__ import annotations

import json
from typing import Any

import pytest
from textual.widgets import DataTable, Input, OptionList, Select, SelectionList, Static, TextArea

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.store.models import DataRule, Penalty, Requirement
from badgetui.tui.app import make_app
from badgetui.tui.messages import OpenTemplate
from badgetui.tui.screens.form_parts import ConfirmScreen, RuleRow, RulesEditor
from badgetui.tui.screens.penalty_form import PenaltyForm
from badgetui.tui.screens.requirement_form import RequirementForm
from badgetui.tui.screens.rule_tester import RuleTesterScreen
from badgetui.tui.screens.template import TemplateScreen
from tests.helpers import DEMO, OTHER, course_event, table_snapshot
from tests.tui.template_data import seed, seed_events


@pytest.fixture
def ids(services) -> dict[str, int]:
    return seed(services)


async def settle(app: Any, pilot: Any) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def open_editor(app: Any, pilot: Any, template_id: int) -> TemplateScreen:
    await settle(app, pilot)
    app.post_message(OpenTemplate(template_id))
    await settle(app, pilot)
    assert isinstance(app.screen, TemplateScreen)
    return app.screen


def plain(widget: Static) -> str:
    return str(widget.render())


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(getattr(c, "plain", c)) for c in table.get_row(key)] for key in table.rows]


def requirement_rows(template_id: int) -> list[tuple[str, str, str, list[tuple[str, str, str]]]]:
    out = []
    for req in Requirement.select().where(Requirement.template == template_id).order_by(
            Requirement.id):
        rules = [(r.path, r.op, r.value) for r in DataRule.select().where(
            DataRule.requirement == req.id).order_by(DataRule.position)]
        out.append((req.key, req.group, req.description, rules))
    return out


async def test_editor_shows_details_link_banner_and_lint(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(app, pilot, ids["python"])
        assert "Python Basics" in plain(screen.query_one("#template-title", Static))
        link = plain(screen.query_one("#template-link", Static))
        assert "/mgmt/organizations/" in link and link.endswith("/badges/templates/python/details")
        banner = screen.query_one("#template-banner", Static)
        assert banner.has_class("-warning") and "ACTIVE" in plain(banner)
        assert "no findings" in plain(screen.query_one("#template-lint", Static))
        reqs = rows(screen.query_one("#requirements", DataTable))
        assert [r[:2] for r in reqs] == [["demo", "A"], ["other", "A"]]
        assert reqs[0][3] == f"is_passing eq true; course.course_key eq {DEMO}"
        assert rows(screen.query_one("#penalties", DataTable))[0][2] == "demo, other"
        # an inactive template: no warning banner; a lint warning shows inline, in its row too
        services.editor.save_penalty(ids["9001"], None, event_type=COURSE_PASSING,
                                     requirements=["any"])
        await pilot.press("escape")
        screen = await open_editor(app, pilot, ids["9001"])
        assert not screen.query_one("#template-banner", Static).has_class("-warning")
        lint = plain(screen.query_one("#template-lint", Static))
        assert "warning: penalty 1 has no rules" in lint
        assert rows(screen.query_one("#penalties", DataTable))[0][4] == "warning"


async def test_adding_a_requirement_with_rules_through_the_form_persists(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(app, pilot, ids["python"])
        await pilot.press("a")
        await settle(app, pilot)
        form = app.screen
        assert isinstance(form, RequirementForm)
        assert "Active template" in plain(form.query_one(".banner", Static))
        form.query_one("#group", Select).value = "B"
        form.query_one("#description", Input).value = "Passed the other course"
        await pilot.click("#add-rule")
        await pilot.pause()
        # the key-path field suggests the event's paths: "is_" completes to is_passing
        await pilot.press("i", "s", "_")
        await pilot.pause()
        await pilot.press("right")
        row = form.query(RuleRow).first()
        assert row.query_one(".rule-path", Input).value == "is_passing"
        row.query_one(".rule-value", Input).value = "yes"
        second = await form.query_one(RulesEditor).add_rule()
        second.query_one(".rule-path", Input).value = "course.course_key"
        second.query_one(".rule-op", Select).value = "ne"
        second.query_one(".rule-value", Input).value = DEMO
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen is screen
        assert requirement_rows(ids["python"])[-1] == (
            "r1", "B", "Passed the other course",
            [("is_passing", "eq", "yes"), ("course.course_key", "ne", DEMO)])
        detail = services.editor.detail(ids["python"])
        assert [r.id for r in detail.config.requirements] == ["demo", "other", "r1"]
        assert [r[0] for r in rows(screen.query_one("#requirements", DataTable))] == [
            "demo", "other", "r1"]


async def test_key_paths_follow_the_event_type_minus_ignored_ones(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_editor(app, pilot, ids["python"])
        await pilot.press("a")
        await settle(app, pilot)
        form = app.screen
        editor = form.query_one(RulesEditor)
        assert "course.course_key" in editor.paths and "user.id" not in editor.paths
        form.query_one("#event-type", Select).value = CCX_COURSE_PASSING
        await pilot.pause()
        assert "course.master_course_key" in editor.paths
        assert "course.course_key" not in editor.paths
        assert "course.coach_email" not in editor.paths  # ignored by default
        assert editor.paths["is_passing"] == "bool"


async def test_an_invalid_boolean_is_shown_in_the_form_and_nothing_is_saved(services, ids):
    before = table_snapshot()
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_editor(app, pilot, ids["python"])
        await pilot.press("e")  # edit "demo"
        await settle(app, pilot)
        form = app.screen
        assert isinstance(form, RequirementForm) and form.key == "demo"
        row = form.query(RuleRow).first()
        assert row.rule == ("is_passing", "eq", "true")
        row.query_one(".rule-value", Input).value = "maybe"
        await pilot.pause()
        assert row.query_one(".rule-value", Input).has_class("-invalid")
        await pilot.click("#save")
        await settle(app, pilot)
        assert app.screen is form
        error = plain(form.query_one("#form-error", Static))
        assert "is_passing is a boolean" in error and "maybe" in error
        # a refusal only the service can tell (a duplicate key) is shown the same way
        row.query_one(".rule-value", Input).value = "true"
        form.query_one("#key", Input).value = "other"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen is form
        assert "'other' used more than once" in plain(form.query_one("#form-error", Static))
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, TemplateScreen)
    assert table_snapshot() == before


async def test_editing_a_requirement_changes_its_rules(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_editor(app, pilot, ids["python"])
        await pilot.press("down", "enter")  # enter on a row edits it: "other"
        await settle(app, pilot)
        form = app.screen
        assert isinstance(form, RequirementForm) and form.key == "other"
        last = form.query(RuleRow).last()
        last.query_one(".rule-remove").press()
        await pilot.pause()
        form.query_one("#description", Input).value = "any passing grade"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert requirement_rows(ids["python"])[1] == (
            "other", "A", "any passing grade", [("is_passing", "eq", "true")])


async def test_a_penalty_can_only_link_this_templates_requirements(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(app, pilot, ids["python"])
        screen.query_one("#penalties", DataTable).focus()
        await pilot.press("a")
        await settle(app, pilot)
        form = app.screen
        assert isinstance(form, PenaltyForm)
        choices = form.query_one("#resets", SelectionList)
        offered = [choices.get_option_at_index(i).value for i in range(choices.option_count)]
        assert offered == ["demo", "other"]  # not d1 or any, which belong to other templates
        await pilot.click("#save")
        await settle(app, pilot)
        assert "choose at least one requirement" in plain(form.query_one("#form-error", Static))
        assert Penalty.select().count() == 1
        choices.select("other")
        rule = await form.query_one(RulesEditor).add_rule("course.course_key", "eq", OTHER)
        rule.query_one(".rule-op", Select).value = "eq"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen is screen
        pens = services.editor.detail(ids["python"]).config.penalties
        assert [(p.requirements, [(r.path, r.value) for r in p.rules]) for p in pens] == [
            (["demo", "other"], [("is_passing", "false")]),
            (["other"], [("course.course_key", OTHER)]),
        ]
        assert len(rows(screen.query_one("#penalties", DataTable))) == 2


async def test_deleting_penalties_and_requirements(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(app, pilot, ids["python"])
        screen.query_one("#penalties", DataTable).focus()
        await pilot.press("d")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # changed my mind
        await settle(app, pilot)
        assert Penalty.select().count() == 1
        await pilot.press("d", "y")
        await settle(app, pilot)
        assert Penalty.select().count() == 0
        assert rows(screen.query_one("#penalties", DataTable)) == []
        screen.query_one("#requirements", DataTable).focus()
        await pilot.press("down", "d", "y")
        await settle(app, pilot)
        assert [r[0] for r in requirement_rows(ids["python"])] == ["demo"]
        # the last requirement of an active template stays, with the reason shown
        await pilot.press("d", "y")
        await settle(app, pilot)
        assert [r[0] for r in requirement_rows(ids["python"])] == ["demo"]
        assert "no requirements" in plain(screen.query_one("#template-message", Static))


async def test_rule_tester_with_a_pasted_event(services, ids):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_editor(app, pilot, ids["python"])
        await pilot.press("t")
        await settle(app, pilot)
        tester = app.screen
        assert isinstance(tester, RuleTesterScreen)
        tester.query_one("#event-json", TextArea).text = json.dumps(
            course_event("cat", OTHER, passing=False))
        await pilot.press("ctrl+t")
        await settle(app, pilot)
        table = tester.query_one("#verdicts", DataTable)
        got = {key.value: [str(getattr(c, "plain", c)) for c in table.get_row(key)]
               for key in table.rows}
        # demo: is_passing fails first; other: is_passing fails first too; the penalty matches
        assert got["0"][1] == "no match" and "stops at rule 1" in got["0"][2]
        assert got["0.0"][1] == "FIRST FAILING" and got["0.0"][3] == "false"
        assert got["0.1"][1] == "fails" and got["0.1"][3] == OTHER
        assert got["1"][1] == "no match" and got["1.0"][1] == "FIRST FAILING"
        assert got["1.1"][1] == "ok"
        assert got["2"][0].startswith("penalty") and got["2"][1] == "MATCH"
        assert "1 of 3 match" in plain(tester.query_one("#tester-status", Static))
        # a passing event for the demo course: demo matches, other stops at its second rule
        tester.query_one("#event-json", TextArea).text = json.dumps(course_event("cat", DEMO))
        await pilot.click("#test")
        await settle(app, pilot)
        got = {key.value: [str(getattr(c, "plain", c)) for c in table.get_row(key)]
               for key in table.rows}
        assert [got[k][1] for k in ("0", "1", "2")] == ["MATCH", "no match", "no match"]
        assert got["1.1"][1] == "FIRST FAILING" and got["1.1"][3] == DEMO
        # not JSON: the reason, no verdicts
        tester.query_one("#event-json", TextArea).text = "{nope"
        await pilot.press("ctrl+t")
        await settle(app, pilot)
        assert table.row_count == 0
        assert "not JSON" in plain(tester.query_one("#tester-status", Static))
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, TemplateScreen)


async def test_rule_tester_with_a_picked_recent_event(services, ids):
    seed_events(services)
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_editor(app, pilot, ids["python"])
        await pilot.press("t")
        await settle(app, pilot)
        tester = app.screen
        recent = tester.query_one("#recent-events", OptionList)
        assert recent.option_count == 2  # newest first: bob, then ann
        await pilot.press("ctrl+l")
        assert app.focused is recent
        await pilot.press("down", "enter")  # ann passed the demo course
        await settle(app, pilot)
        assert json.loads(tester.query_one("#event-json", TextArea).text)["id"] == "evt-ann"
        table = tester.query_one("#verdicts", DataTable)
        got = {key.value: [str(getattr(c, "plain", c)) for c in table.get_row(key)]
               for key in table.rows}
        assert [got[k][1] for k in ("0", "1", "2")] == ["MATCH", "no match", "no match"]
        assert got["1.1"][1] == "FIRST FAILING"
        assert got["2.0"][1] == "FIRST FAILING" and got["2.0"][3] == "true"
