"""Impact analysis before a change (issue 13, item 2): `config import --dry-run` says, for an
active template, how many learners would lose or gain progress and how many would have every
group fulfilled at once, from the stored fulfillments and the intake log."""

from __future__ import annotations

import json

from badgetui.cli import main
from badgetui.store.models import Template
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

THIRD = "course-v1:edX+DemoX+THIRD_Course"


def three_groups() -> list[dict]:
    return [requirement("demo", rule("course.course_key", DEMO), group="A"),
            requirement("other", rule("course.course_key", OTHER), group="B"),
            requirement("third", rule("course.course_key", THIRD), group="C")]


def seeded(services, synced) -> None:
    synced("t1")
    services.config.import_text(config_text(template_config("t1", three_groups())))
    services.intake.ingest_lines(jsonl(
        course_event("ann", DEMO), course_event("ann", OTHER),   # 2 of 3
        course_event("bob", DEMO),                              # 1 of 3
        course_event("cat", OTHER), course_event("cat", THIRD),  # 2 of 3
        course_event("dan", DEMO, passing=False),               # 1 of 3, a failing grade
    ), "history")


def test_dropping_a_group_and_tightening_a_rule(services, synced):
    seeded(services, synced)
    reqs = three_groups()[:2]  # third removed: two groups left
    reqs[0]["rules"].append(rule("is_passing", "true"))  # demo now needs a passing grade
    plan = services.config.import_text(config_text(template_config("t1", reqs)), dry_run=True)
    (impact,) = plan.impacts
    tpl = Template.get(Template.external_id == "t1")
    assert (impact.template_id, impact.learners) == (tpl.id, 4)
    assert impact.lose == 1          # cat's third-course fulfillment goes with its requirement
    assert impact.mismatch == 1      # dan's demo was a failing grade: kept, but listed
    assert impact.qualify == 1       # ann: demo and other are now all the groups
    assert (impact.gain, impact.unqualify) == (0, 0)


def test_merging_groups_is_a_gain_and_qualifies(services, synced):
    seeded(services, synced)
    reqs = three_groups()
    for req in reqs:
        req["group"] = "A"  # any one course now
    plan = services.config.import_text(config_text(template_config("t1", reqs)), dry_run=True)
    (impact,) = plan.impacts
    assert (impact.lose, impact.gain, impact.qualify) == (0, 0, 4)


def test_the_cli_prints_the_impact(services, synced, db_url, monkeypatch, capsys, tmp_path):
    seeded(services, synced)
    services.close()
    path = tmp_path / "cfg.json"
    path.write_text(config_text(template_config("t1", three_groups()[:2])))
    monkeypatch.setenv("BADGETUI_DB", db_url)
    assert main(["config", "import", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 learners with progress: 1 would lose progress, 0 gain, 1 would have every " \
           "group fulfilled at once, 0 would no longer" in out
    assert main(["config", "import", str(path), "--dry-run", "--json"]) == 0
    (impact,) = json.loads(capsys.readouterr().out)["impact"]
    assert impact["lose"] == 1 and impact["qualify"] == 1
    # an inactive template, or no change: no impact to compute
    assert main(["config", "import", str(path)]) == 0
    capsys.readouterr()
    assert main(["config", "import", str(path), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["impact"] == []
