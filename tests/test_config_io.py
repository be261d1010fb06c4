"""Badge configuration as code (formats.md): export, declarative all-or-nothing import, lint,
and activation rules."""

from __future__ import annotations

import json

import pytest

from badgetui.domain.events import BADGE_AWARDED, CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.services import Services
from badgetui.services.common import ServiceError, config_generation
from badgetui.services.config_io import ConfigImportError, export_config, parse_config
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import (
    AuditLog,
    Badge,
    DataRule,
    Fulfillment,
    Penalty,
    PenaltyRequirement,
    Progress,
    ProviderAccount,
    Requirement,
    Template,
)
from tests.conftest import CREDLY_ORG
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    table_snapshot,
    template_config,
)

ORG2 = "0b7e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4"
ACCREDIBLE = "Example Accredible"
THIRD = "course-v1:edX+DemoX+Third"
CCX = "ccx-v1:edX+DemoX+Demo_Course+ccx@1"


def rich_config() -> str:
    """Several templates, groups, penalties, rules, descriptions; some spellings not canonical."""
    return config_text(
        template_config("t1", [
            requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                        group="A", description="Pass the Demo course"),
            requirement("demo-ccx", rule("is_passing", "yes"),
                        rule("course.master_course_key", DEMO, "="),
                        group="A", event_type=CCX_COURSE_PASSING,
                        description="Pass a CCX of Demo"),
            requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                        group="B"),
        ], [
            penalty(["demo", "demo-ccx"], rule("is_passing", "false"),
                    rule("course.course_key", DEMO), description="Failing Demo again"),
            penalty(["other"], rule("is_passing", "-"), rule("course.course_key", OTHER, "==")),
        ]),
        template_config("t2", [
            requirement("any", description="Any grade update"),
        ], active=False),
        template_config("t3", [
            requirement("third", rule("course.course_key", THIRD),
                        rule("is_passing", "false", "ne"), group="C"),
            requirement("alt", rule("course.course_key", OTHER), group="D"),
        ], [penalty(["third", "alt"], rule("is_passing", "false"))]),
        {**template_config("9001", [
            requirement("acc", rule("user.pii.email", "ann@example.org", "!=")),
        ], provider="accredible")},
    )


def sync_all(synced) -> None:
    synced("t1", "t2", "t3", "t4")
    synced("9001", "9002", provider="accredible", account=ACCREDIBLE)


def open_second(new_database, clock) -> Services:
    """Another database with the same templates synced in (binds the models to it)."""
    second = Services.open(Settings(db=new_database("second")), clock=clock)
    for provider, identifier, ids in [("credly", CREDLY_ORG, ["t1", "t2", "t3", "t4"]),
                                      ("accredible", ACCREDIBLE, ["9001", "9002"])]:
        second.templates.add_account(provider, identifier, "test-key-1234", name="Example")
        acct = ProviderAccount.get(ProviderAccount.identifier == identifier)
        second.templates.upsert_synced(acct, [SyncedTemplate(i, f"Template {i}") for i in ids])
    return second


# -- export / import round trip ------------------------------------------------------------


def test_export_import_export_is_byte_identical(services, synced, new_database, clock):
    sync_all(synced)
    plan = services.config.import_text(rich_config())
    assert plan.applied
    first = export_config()
    doc = json.loads(first)
    assert [(t["provider"], t["external_id"]) for t in doc["templates"]] == [
        ("accredible", "9001"), ("accredible", "9002"),
        ("credly", "t1"), ("credly", "t2"), ("credly", "t3"), ("credly", "t4"),
    ]
    t1 = doc["templates"][2]
    assert t1["active"] is True
    assert [(r["id"], r["group"], r["description"]) for r in t1["requirements"]] == [
        ("demo", "A", "Pass the Demo course"),
        ("demo-ccx", "A", "Pass a CCX of Demo"),
        ("other", "B", ""),
    ]
    # operator aliases are written canonically; values are kept as written
    assert t1["requirements"][1]["rules"] == [
        {"path": "is_passing", "op": "eq", "value": "yes"},
        {"path": "course.master_course_key", "op": "eq", "value": DEMO},
    ]
    assert t1["penalties"] == [
        {"event_type": COURSE_PASSING, "requirements": ["demo", "demo-ccx"],
         "description": "Failing Demo again",
         "rules": [{"path": "is_passing", "op": "eq", "value": "false"},
                   {"path": "course.course_key", "op": "eq", "value": DEMO}]},
        {"event_type": COURSE_PASSING, "requirements": ["other"], "description": "",
         "rules": [{"path": "is_passing", "op": "eq", "value": "-"},
                   {"path": "course.course_key", "op": "eq", "value": OTHER}]},
    ]
    assert doc["templates"][0]["requirements"][0]["rules"][0]["op"] == "ne"
    assert doc["templates"][3]["active"] is False
    assert doc["templates"][5] == {"provider": "credly", "external_id": "t4", "active": False,
                                   "requirements": [], "penalties": []}

    again = services.config.import_text(first)
    assert again.changes == []
    assert not again.applied
    assert export_config() == first

    # the exported text builds the same configuration in another database
    second = open_second(new_database, clock)
    try:
        second.config.import_text(first)
        assert export_config() == first
    finally:
        second.close()


def test_export_is_canonical_text(services, synced):
    sync_all(synced)
    services.config.import_text(rich_config())
    text = export_config()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    assert "api_key" not in text
    assert "test-key-1234" not in text


def test_omitted_group_defaults_to_next_unused_letter(services, synced):
    synced("t1")
    text = config_text(template_config("t1", [
        requirement("first", rule("course.course_key", DEMO)),
        requirement("second", rule("course.course_key", OTHER), group="A"),
        requirement("third", rule("course.course_key", THIRD)),
        requirement("fourth", rule("course.course_key", "course-v1:x+y+z"), group="b"),
    ]))
    services.config.import_text(text)
    groups = {r.key: r.group for r in Requirement.select()}
    assert groups == {"first": "C", "second": "A", "third": "D", "fourth": "B"}
    exported = export_config()
    assert [r["group"] for r in json.loads(exported)["templates"][0]["requirements"]] == [
        "C", "A", "D", "B"
    ]
    # the same input again and the export are both no-ops; the export is stable
    assert services.config.import_text(text).changes == []
    assert services.config.import_text(exported).changes == []
    assert export_config() == exported


def test_defaulted_groups_are_anded(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO)),
        requirement("other", rule("course.course_key", OTHER)),
    ])))
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    assert Badge.select().count() == 0
    services.intake.ingest_lines(jsonl(course_event("ann", OTHER)), "t")
    assert Badge.select().where(Badge.status == "awarded").count() == 1


# -- declarative import ----------------------------------------------------------------------

THREE_GROUPS = [
    requirement("a", rule("course.course_key", DEMO), group="A", description="Demo"),
    requirement("b", rule("course.course_key", OTHER), group="B"),
    requirement("c", rule("course.course_key", THIRD), group="C"),
]


def fulfillments() -> dict[str, tuple[int, str]]:
    return {
        key: (fid, event_id)
        for fid, key, event_id in Fulfillment.select(
            Fulfillment.id, Requirement.key, Fulfillment.event_id
        ).join(Requirement).tuples()
    }


def test_reimport_keeps_fulfillments_and_removes_unlisted(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config(
        "t1", THREE_GROUPS, [penalty(["a"], rule("is_passing", "false"),
                                     rule("course.course_key", DEMO))]
    )))
    services.intake.ingest_lines(
        jsonl(course_event("ann", DEMO, event_id="e-a"), course_event("ann", OTHER,
                                                                      event_id="e-b")), "t")
    before = fulfillments()
    assert set(before) == {"a", "b"}
    assert Progress.get().fulfilled_groups == 2
    requirement_ids = {r.key: r.id for r in Requirement.select()}

    # the same configuration again: nothing to do, rows untouched
    same = services.config.import_text(config_text(template_config(
        "t1", THREE_GROUPS, [penalty(["a"], rule("is_passing", "false"),
                                     rule("course.course_key", DEMO))]
    )))
    assert same.changes == []
    assert fulfillments() == before
    assert {r.key: r.id for r in Requirement.select()} == requirement_ids

    # requirements are matched by id: editing one keeps its fulfilments
    edited = [
        requirement("a", rule("course.course_key", DEMO), group="A", description="Demo!"),
        THREE_GROUPS[1],
        THREE_GROUPS[2],
    ]
    plan = services.config.import_text(config_text(template_config("t1", edited)))
    assert plan.applied
    assert fulfillments() == before
    assert {r.key: r.id for r in Requirement.select()} == requirement_ids
    assert Requirement.get(Requirement.key == "a").description == "Demo!"
    # the penalty was not listed: it is gone with its rules and links
    assert Penalty.select().count() == 0
    assert PenaltyRequirement.select().count() == 0
    assert DataRule.select().where(DataRule.penalty.is_null(False)).count() == 0

    # "b" is not listed any more: it goes, with its rules and its fulfilments
    plan = services.config.import_text(config_text(template_config(
        "t1", [edited[0], THREE_GROUPS[2]]
    )))
    assert any("remove requirement 'b'" in change for change in plan.changes)
    assert [r.key for r in Requirement.select().order_by(Requirement.position)] == ["a", "c"]
    assert fulfillments() == {"a": before["a"]}
    assert DataRule.select().where(DataRule.requirement.is_null(False)).count() == 2
    progress = Progress.get()
    assert progress.fulfilled_groups == 1
    assert not progress.complete

    # the remaining groups still work
    services.intake.ingest_lines(jsonl(course_event("ann", THIRD)), "t")
    assert Badge.get().status == "awarded"


def test_import_deactivates_when_told(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", THREE_GROUPS)))
    assert Template.get().is_active
    plan = services.config.import_text(config_text(template_config("t1", THREE_GROUPS,
                                                                   active=False)))
    assert any(change.endswith("deactivate") for change in plan.changes)
    assert not Template.get().is_active


def test_templates_not_listed_are_left_alone(services, synced):
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", THREE_GROUPS), template_config("t2", THREE_GROUPS[:1]),
    ))
    services.config.import_text(config_text(template_config("t1", THREE_GROUPS[:2])))
    t2 = Template.get(Template.external_id == "t2")
    assert [r.key for r in t2.requirements] == ["a"]
    assert t2.is_active


def test_reimport_with_penalty_requirements_in_another_order_is_a_no_op(services, synced):
    synced("t1")
    text = config_text(template_config("t1", THREE_GROUPS, [
        penalty(["c", "a"], rule("is_passing", "false")),
    ]))
    services.config.import_text(text)
    exported = export_config()
    assert services.config.import_text(text).changes == []
    assert export_config() == exported


# -- all or nothing --------------------------------------------------------------------------


def test_every_problem_listed_and_nothing_changed(services, synced):
    synced("t1", "t2", "t3", "t4")
    services.config.import_text(config_text(template_config("t1", THREE_GROUPS)))
    before = table_snapshot()
    generation = config_generation()
    text = config_text(
        template_config("nope", THREE_GROUPS),
        template_config("t1", [
            requirement("a", rule("course.course_key", DEMO),
                        event_type="org.openedx.learning.made.up.v1"),
        ]),
        template_config("t2", [requirement("mine", rule("course.course_key", OTHER))],
                        [penalty(["a"], rule("is_passing", "false"))]),
        template_config("t3", []),
        template_config("t4", [requirement("x", rule("course.course_key", DEMO), group="AB")]),
    )
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(text)
    problems = caught.value.problems
    text_of = "\n".join(problems)

    def listed(*fragments: str) -> bool:
        return any(all(f in p for f in fragments) for p in problems)

    assert listed("nope", "unknown template"), text_of
    assert listed("t1", "unknown event type", "org.openedx.learning.made.up.v1"), text_of
    assert listed("t2", "another template", "'a'", "credly:t1"), text_of
    assert listed("t3", "no requirements"), text_of
    assert listed("group", "AB"), text_of
    assert len(problems) >= 5
    assert table_snapshot() == before
    assert config_generation() == generation
    assert str(caught.value).startswith(f"configuration refused ({len(problems)} problems)")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"version": 1, "templates": [', "not JSON"),
        ("", "not JSON"),
        ("{'version': 1}", "not JSON"),
    ],
)
def test_not_json_is_refused(services, synced, text, fragment):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", THREE_GROUPS)))
    before = table_snapshot()
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(text)
    assert len(caught.value.problems) == 1
    assert fragment in caught.value.problems[0]
    assert table_snapshot() == before


def test_shape_problems_are_all_listed(services, synced):
    synced("t1", "t2")
    before = table_snapshot()
    doc = {"version": 1, "templates": [
        {**template_config("t1", THREE_GROUPS), "provider": "openbadges"},
        template_config("t2", [{"id": "x", "event_type": COURSE_PASSING, "group": "7",
                                "rules": [{"path": "is_passing", "op": "like", "value": "1"}]}]),
        {**template_config("t1", THREE_GROUPS), "colour": "red"},
    ]}
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(json.dumps(doc))
    joined = "\n".join(caught.value.problems)
    assert "templates[0].provider" in joined
    assert "templates[1].requirements[0].group" in joined
    assert "templates[1].requirements[0].rules[0].op" in joined
    assert "templates[2].colour" in joined
    assert table_snapshot() == before


def test_duplicate_requirement_ids_and_unknown_penalty_targets(services, synced):
    synced("t1")
    before = table_snapshot()
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(template_config(
            "t1", [*THREE_GROUPS, requirement("a", rule("course.course_key", "x"))],
            [penalty(["zzz"], rule("is_passing", "false"))],
        )))
    joined = "\n".join(caught.value.problems)
    assert "'a' used more than once" in joined
    assert "unknown requirement 'zzz'" in joined
    assert table_snapshot() == before


def test_template_listed_twice_is_a_problem(services, synced):
    synced("t1")
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(
            template_config("t1", THREE_GROUPS), template_config("t1", THREE_GROUPS[:1]),
        ))
    assert any("listed twice" in p for p in caught.value.problems)


def test_dry_run_returns_the_plan_and_changes_nothing(services, synced):
    synced("t1", "t2")
    services.config.import_text(config_text(template_config("t1", THREE_GROUPS)))
    before = table_snapshot()
    generation = config_generation()
    text = config_text(
        template_config("t1", [
            requirement("a", rule("course.course_key", DEMO), group="A", description="new"),
            THREE_GROUPS[2],
            requirement("d", rule("course.course_key", "course-v1:x+y+d"), group="B"),
        ], [penalty(["a"], rule("is_passing", "false"))], active=False),
        template_config("t2", THREE_GROUPS[:2]),
    )
    plan = services.config.import_text(text, dry_run=True)
    t1, t2 = (f"template {t.id} credly:{t.external_id} (Template {t.external_id})"
              for t in Template.select().order_by(Template.external_id))
    assert plan.changes == [
        f"{t1}: deactivate",
        f"{t1}: add requirement 'd'",
        f"{t1}: remove requirement 'b' and its progress",
        f"{t1}: change requirement 'a'",
        f"{t1}: set 1 penalties (was 0)",
        f"{t2}: activate",
        f"{t2}: add requirement 'a'",
        f"{t2}: add requirement 'b'",
    ]
    assert plan.changed
    assert not plan.applied
    assert table_snapshot() == before
    assert config_generation() == generation

    applied = services.config.import_text(text)
    assert applied.applied
    assert applied.changes == plan.changes
    assert table_snapshot() != before
    assert config_generation() > generation
    assert AuditLog.select().where(AuditLog.action == "config.import").count() == 2


# -- accounts ----------------------------------------------------------------------------------


def test_account_disambiguates_shared_external_id(services, synced):
    synced("shared", "t1")
    synced("shared", account=ORG2)
    before = table_snapshot()
    reqs = [requirement("demo", rule("course.course_key", DEMO))]

    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(template_config("shared", reqs)))
    [problem] = caught.value.problems
    assert "several accounts" in problem
    assert CREDLY_ORG in problem and ORG2 in problem
    assert '"account"' in problem
    assert table_snapshot() == before

    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(
            {**template_config("shared", reqs), "account": "no-such-org"}
        ))
    assert "unknown template" in caught.value.problems[0]

    services.config.import_text(config_text({**template_config("shared", reqs),
                                             "account": ORG2}))
    org2 = Template.select().join(ProviderAccount).where(
        (Template.external_id == "shared") & (ProviderAccount.identifier == ORG2)).get()
    org1 = Template.select().join(ProviderAccount).where(
        (Template.external_id == "shared") & (ProviderAccount.identifier == CREDLY_ORG)).get()
    assert org2.is_active and [r.key for r in org2.requirements] == ["demo"]
    assert not org1.is_active and list(org1.requirements) == []

    exported = export_config()
    shared = [t for t in json.loads(exported)["templates"] if t["external_id"] == "shared"]
    assert sorted((t["account"], t["active"]) for t in shared) == sorted(
        [(CREDLY_ORG, False), (ORG2, True)]
    )
    assert all("account" not in t for t in json.loads(exported)["templates"]
               if t["external_id"] != "shared")
    assert services.config.import_text(exported).changes == []
    assert export_config() == exported


# -- lint ----------------------------------------------------------------------------------------


def findings_for(services: Services, *templates: dict) -> list:
    return services.config.lint(parse_config(config_text(*templates)))


def test_lint_warns_about_rule_less_penalty(services, synced):
    synced("t1")
    plan = services.config.import_text(config_text(template_config(
        "t1", THREE_GROUPS, [penalty(["a"])]
    )))
    assert plan.applied
    assert any("has no rules" in w for w in plan.warnings)
    found = services.config.lint()
    assert [(f.level, "has no rules" in f.message) for f in found] == [("warning", True)]
    assert COURSE_PASSING in found[0].message


def test_lint_clean_configuration_has_no_findings(services, synced):
    sync_all(synced)
    services.config.import_text(rich_config())
    assert services.config.lint() == []


def test_lint_rule_on_path_the_event_does_not_have(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("course.master_course_key", DEMO), group="A"),
        requirement("b", rule("course.course_key", DEMO), group="A"),
        requirement("c", rule("course.master_course_key", DEMO), group="B",
                    event_type=CCX_COURSE_PASSING),
    ], [penalty(["a"], rule("grade", "A"))]))
    errors = [f.message for f in found if f.level == "error"]
    assert any("'a'" in m and "course.master_course_key" in m and COURSE_PASSING in m
               for m in errors), errors
    assert any("penalty 1" in m and "'grade'" in m for m in errors), errors
    assert not any("'b'" in m or "'c'" in m for m in errors), errors


def test_lint_non_boolean_value_on_boolean_field(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("is_passing", "maybe"), group="A"),
        requirement("b", rule("user.is_active", "1"), group="B"),
        *[requirement(f"ok{i}", rule("is_passing", word), group="C")
          for i, word in enumerate(["true", "True", "yes", "Yes", "+", "false", "No", "-"])],
    ]))
    errors = [f.message for f in found if f.level == "error"]
    assert any("'a'" in m and "is_passing is a boolean" in m and "'maybe'" in m
               for m in errors), errors
    assert any("'b'" in m and "user.is_active is a boolean" in m for m in errors), errors
    assert not any("ok" in m for m in errors), errors


def test_lint_template_that_can_never_complete(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("course.course_key", DEMO), group="A"),
        requirement("b", rule("is_passing", "true"), rule("is_passing", "no"), group="B"),
    ]))
    messages = [(f.level, f.message) for f in found]
    assert ("error", "requirement 'b' can never match: "
            "is_passing must equal both 'true' and 'false'") in messages
    assert ("error", "can never complete: no requirement of group B can match") in messages
    assert all(f.template == "credly:t1" for f in found)


def test_lint_eq_and_ne_of_the_same_value_contradict(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("course.course_key", DEMO), rule("course.course_key", DEMO, "ne"),
                    group="A"),
    ]))
    assert any("can never complete" in f.message and "group A" in f.message for f in found)


def test_lint_group_with_one_live_requirement_can_complete(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("is_passing", "true"), rule("is_passing", "false"), group="A"),
        requirement("b", rule("course.course_key", DEMO), group="A"),
    ]))
    messages = [f.message for f in found]
    assert any("'a' can never match" in m for m in messages)
    assert not any("can never complete" in m for m in messages)


def test_lint_same_boolean_in_two_spellings_is_no_contradiction(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("is_passing", "true"), rule("is_passing", "Yes"), group="A"),
    ]))
    assert found == []


def test_lint_requirement_on_a_path_the_event_lacks_can_never_complete(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("course.course_key", DEMO), group="A"),
        requirement("b", rule("course.ccx_course_key", CCX), group="B"),
    ]))
    assert any(f.level == "error" and "can never complete" in f.message
               and "group B" in f.message for f in found), found


def test_lint_event_type_not_configured(services):
    found = findings_for(services, template_config("t1", [
        requirement("a", rule("course.course_key", DEMO), group="A"),
        requirement("b", group="B", event_type=BADGE_AWARDED),
    ]))
    assert any(f.level == "warning" and "not in the configured events" in f.message
               for f in found)
    assert any(f.level == "error" and "group B" in f.message for f in found)


def test_import_refuses_lint_errors(services, synced):
    synced("t1")
    before = table_snapshot()
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(template_config("t1", [
            requirement("a", rule("is_passing", "true"), rule("is_passing", "false")),
        ])))
    assert any("can never" in p for p in caught.value.problems)
    assert table_snapshot() == before


# -- activation ----------------------------------------------------------------------------------


def template_id(external_id: str) -> int:
    return Template.get(Template.external_id == external_id).id


def test_activation_refused_without_requirements(services, synced):
    synced("t1")
    tid = template_id("t1")
    generation = config_generation()
    with pytest.raises(ServiceError, match="no requirements"):
        services.templates.set_active(tid, True)
    assert not Template.get_by_id(tid).is_active
    assert config_generation() == generation
    # and through a configuration file
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(template_config("t1", [])))
    assert any("no requirements" in p for p in caught.value.problems)


def test_activation_and_deactivation(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", THREE_GROUPS, active=False)))
    tid = template_id("t1")
    view = services.templates.set_active(tid, True)
    assert view.active and view.requirements == 3
    assert Template.get_by_id(tid).is_active
    assert not services.templates.set_active(tid, False).active
    assert not services.templates.set_active("t1", False).active


def test_stale_template_cannot_be_activated_until_seen_again(services, synced):
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", THREE_GROUPS, active=False), template_config("t2", THREE_GROUPS),
    ))
    acct = ProviderAccount.get(ProviderAccount.identifier == CREDLY_ORG)
    result = services.templates.upsert_synced(acct, [SyncedTemplate("t2", "Template t2")])
    assert result["stale"] == 1
    t1 = Template.get(Template.external_id == "t1")
    assert t1.stale and not t1.deleted
    assert Requirement.select().where(Requirement.template == t1.id).count() == 3

    with pytest.raises(ServiceError, match="stale"):
        services.templates.set_active(t1.id, True)
    assert not Template.get_by_id(t1.id).is_active
    with pytest.raises(ConfigImportError) as caught:
        services.config.import_text(config_text(template_config("t1", THREE_GROUPS)))
    assert any("stale" in p for p in caught.value.problems)

    synced("t1")  # seen again
    assert not Template.get_by_id(t1.id).stale
    assert services.templates.set_active(t1.id, True).active


def test_active_template_that_goes_stale_stops_awarding(services, synced):
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", THREE_GROUPS[:1]), template_config("t2", THREE_GROUPS[:1]),
    ))
    acct = ProviderAccount.get(ProviderAccount.identifier == CREDLY_ORG)
    services.templates.upsert_synced(acct, [SyncedTemplate("t2", "Template t2")])
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    awarded = [b.template.external_id for b in Badge.select()]
    assert awarded == ["t2"]
    with pytest.raises(ServiceError, match="stale"):
        services.templates.set_active(template_id("t1"), True)


def test_round_trip_with_an_active_template_gone_stale(services, synced):
    """Export of a template that went stale while active imports back unchanged."""
    synced("t1", "t2")
    services.config.import_text(config_text(
        template_config("t1", THREE_GROUPS), template_config("t2", THREE_GROUPS[:1]),
    ))
    acct = ProviderAccount.get(ProviderAccount.identifier == CREDLY_ORG)
    services.templates.upsert_synced(acct, [SyncedTemplate("t2", "Template t2")])
    assert Template.get(Template.external_id == "t1").stale
    exported = export_config()
    plan = services.config.import_text(exported)
    assert plan.changes == []
    assert export_config() == exported


def test_round_trip_with_a_deleted_twin_in_another_account(services, synced):
    """A template deleted at one account is not exported; its live twin still imports."""
    synced("shared")
    synced("shared", account=ORG2)
    Template.update(deleted=True, is_active=False).where(
        Template.account == ProviderAccount.get(ProviderAccount.identifier == CREDLY_ORG).id
    ).execute()
    services.config.import_text(config_text(
        {**template_config("shared", THREE_GROUPS), "account": ORG2}
    ))
    exported = export_config()
    [entry] = json.loads(exported)["templates"]
    assert entry["external_id"] == "shared" and entry["active"] is True
    plan = services.config.import_text(exported)
    assert plan.changes == []
    assert export_config() == exported
