"""Template detail, requirement/penalty editing and the rule tester (the console's backend)."""

from __future__ import annotations

import pytest

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.services.common import ServiceError
from badgetui.store.models import DataRule, Penalty, Requirement, Template
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    jsonl,
    requirement,
    rule,
    template_config,
)


@pytest.fixture
def tpl(services, synced) -> int:
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", [requirement("demo", rule("is_passing", "true"),
                                           rule("course.course_key", DEMO), group="A")]),
        template_config("t2", [requirement("elsewhere", rule("is_passing", "true"))],
                        active=False),
    ))
    return Template.get(Template.external_id == "t1").id


def test_detail_has_dashboard_link_requirements_and_lint(services, tpl):
    detail = services.editor.detail(tpl)
    assert detail.dashboard_url.endswith("/badges/templates/t1/details")
    assert "/mgmt/organizations/" in detail.dashboard_url
    assert [r.id for r in detail.config.requirements] == ["demo"]
    assert detail.active and detail.findings == []


def test_add_requirement_with_rules_persists_with_next_group(services, tpl):
    services.editor.save_requirement(tpl, None, event_type=COURSE_PASSING,
                                     rules=[("course.course_key", "eq", OTHER),
                                            ("is_passing", "=", "yes")])
    row = Requirement.get(Requirement.key == "r1")
    assert row.group == "B" and row.template_id == tpl
    assert [(r.path, r.op, r.value) for r in DataRule.select().where(
        DataRule.requirement == row.id).order_by(DataRule.position)] == [
        ("course.course_key", "eq", OTHER), ("is_passing", "eq", "yes")]


@pytest.mark.parametrize(("rules", "message"), [
    ([("is_passing", "eq", "maybe")], "is a boolean"),
    ([("course.nope", "eq", "x")], "does not have"),
    ([("is_passing", "like", "1")], "unknown operator"),
    ([("is_passing", "gt", "1")], "is a boolean; order makes no sense"),
    ([("course.course_key", "lt", "7")], "is text \\(or a date\\), compared with a number"),
])
def test_invalid_rules_are_refused_and_nothing_changes(services, tpl, rules, message):
    before = DataRule.select().count()
    with pytest.raises(ServiceError, match=message):
        services.editor.save_requirement(tpl, "demo", event_type=COURSE_PASSING, rules=rules)
    assert DataRule.select().count() == before


def test_penalty_limited_to_the_templates_requirements(services, tpl):
    with pytest.raises(ServiceError, match="only reset this template's requirements"):
        services.editor.save_penalty(tpl, None, event_type=COURSE_PASSING,
                                     requirements=["elsewhere"],
                                     rules=[("is_passing", "eq", "false")])
    assert Penalty.select().count() == 0
    services.editor.save_penalty(tpl, None, event_type=COURSE_PASSING, requirements=["demo"],
                                 rules=[("is_passing", "eq", "false")])
    assert Penalty.select().count() == 1
    services.editor.delete_penalty(tpl, 0)
    assert Penalty.select().count() == 0


def test_deleting_the_last_requirement_of_an_active_template_is_refused(services, tpl):
    with pytest.raises(ServiceError, match="no requirements"):
        services.editor.delete_requirement(tpl, "demo")
    assert Requirement.select().where(Requirement.template == tpl).count() == 1


def test_key_paths_offer_event_paths_minus_ignored(services):
    paths = dict(services.editor.key_paths(CCX_COURSE_PASSING, ignored={"user.id"}))
    assert paths["is_passing"] == "bool" and "course.master_course_key" in paths
    assert "user.id" not in paths


def test_rule_tester_verdicts_with_first_failing_rule(services, tpl):
    services.editor.save_penalty(tpl, None, event_type=COURSE_PASSING, requirements=["demo"],
                                 rules=[("is_passing", "eq", "false"),
                                        ("course.course_key", "eq", DEMO)])
    result = services.editor.test_event(tpl, course_event("ann", OTHER))
    req, pen = result.verdicts
    assert (req.kind, req.matched, req.first_failing) == ("requirement", False, 1)
    assert req.rules[1].actual == OTHER and not req.rules[1].matched
    assert (pen.kind, pen.matched, pen.first_failing) == ("penalty", False, 0)
    passing = services.editor.test_event(tpl, course_event("ann", DEMO))
    assert [v.matched for v in passing.verdicts] == [True, False]
    failing = services.editor.test_event(tpl, course_event("ann", DEMO, passing=False))
    assert [v.matched for v in failing.verdicts] == [False, True]
    assert services.editor.test_event(tpl, "{nope").status == "rejected"


def test_recent_events_can_be_replayed_in_the_tester(services, tpl):
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO, event_id="recent-1")), "t")
    (recent,) = services.editor.recent_events()
    assert recent["id"] == "recent-1" and recent["username"] == "ann"
    verdict = services.editor.test_event(tpl, recent["event"])
    assert verdict.verdicts[0].matched
