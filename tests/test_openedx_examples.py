"""The eleven "Configuration examples" of the Open edX Credentials badges documentation.

Each example is configured as documented, then fed events that must award and events that
must not; the assertions read the badges, progress and intake log from the database.
"""

from __future__ import annotations

from typing import Any

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.store.models import Badge, DataRule, IntakeRecord, Learner, Progress, Template
from tests.helpers import (
    DEMO,
    OTHER,
    ccx_event,
    config_text,
    course_event,
    jsonl,
    requirement,
    rule,
    template_config,
)

CCX_1 = "ccx-v1:edX+DemoX+Demo_Course+ccx@1"
CCX_2 = "ccx-v1:edX+DemoX+Demo_Course+ccx@2"
CCX_3 = "ccx-v1:edX+DemoX+Demo_Course+ccx@3"
CCX_5 = "ccx-v1:edX+DemoX+Demo_Course+ccx@5"
CCX_OTHER = "ccx-v1:edX+DemoX+OTHER_Course+ccx@1"
THIRD = "course-v1:edX+DemoX+THIRD_Course"


def setup(services: Any, synced: Any, ext: str, requirements: list[dict[str, Any]]) -> None:
    synced(ext)
    plan = services.config.import_text(config_text(template_config(ext, requirements)))
    assert plan.applied
    assert Template.get(Template.external_id == ext).is_active


def feed(services: Any, *events: dict[str, Any]) -> None:
    report = services.intake.ingest_lines(jsonl(*events), "test")
    assert report.counts["processed"] == len(events)


def awarded(ext: str) -> dict[str, str]:
    """{username: id of the event that awarded} for the template's awarded badges."""
    rows = (
        Badge.select(Learner.username, Badge.award_event_id)
        .join(Learner).switch(Badge).join(Template)
        .where((Template.external_id == ext) & (Badge.status == "awarded"))
        .tuples()
    )
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "one held badge per learner"
    return dict(rows)


def groups_done(username: str, ext: str) -> int:
    row = (
        Progress.select().join(Learner).switch(Progress).join(Template)
        .where((Learner.username == username) & (Template.external_id == ext))
        .first()
    )
    return 0 if row is None else row.fulfilled_groups


def is_passing_true(word: str = "true", op: str = "eq") -> dict[str, str]:
    return rule("is_passing", word, op=op)


# (1) Any grade update -------------------------------------------------------------------
def test_example_1_any_grade_update(services, synced):
    setup(services, synced, "ex1", [requirement("grade", description="Any grade update")])
    feed(services,
         course_event("pass", DEMO, True, event_id="1-a"),
         course_event("fail", OTHER, False, event_id="1-b"),
         ccx_event("ccx", CCX_1, DEMO, True, event_id="1-c"))
    assert awarded("ex1") == {"pass": "1-a", "fail": "1-b"}
    assert groups_done("ccx", "ex1") == 0


# (2) Any course completion --------------------------------------------------------------
def test_example_2_any_course_completion(services, synced):
    setup(services, synced, "ex2", [requirement("completion", is_passing_true())])
    feed(services,
         course_event("demo", DEMO, True, event_id="2-a"),
         course_event("other", OTHER, True, event_id="2-b"),
         course_event("failer", DEMO, False, event_id="2-c"),
         ccx_event("ccx", CCX_1, DEMO, True, event_id="2-d"))
    assert awarded("ex2") == {"demo": "2-a", "other": "2-b"}


# (3) Any CCX course completion ----------------------------------------------------------
def test_example_3_any_ccx_completion(services, synced):
    setup(services, synced, "ex3", [
        requirement("ccx", is_passing_true(), event_type=CCX_COURSE_PASSING)])
    feed(services,
         ccx_event("ccx1", CCX_1, DEMO, True, event_id="3-a"),
         ccx_event("ccxo", CCX_OTHER, OTHER, True, event_id="3-b"),
         ccx_event("ccxfail", CCX_2, DEMO, False, event_id="3-c"),
         course_event("course", DEMO, True, event_id="3-d"))
    assert awarded("ex3") == {"ccx1": "3-a", "ccxo": "3-b"}
    assert groups_done("course", "ex3") == 0


# (4) Any course except a specific one ---------------------------------------------------
def test_example_4_any_course_except_demo(services, synced):
    # The documentation's own operator words.
    setup(services, synced, "ex4", [requirement(
        "not-demo", is_passing_true(op="equals"),
        rule("course.course_key", DEMO, op="not equals"))])
    assert sorted(r.op for r in DataRule.select()) == ["eq", "ne"]
    feed(services,
         course_event("other", OTHER, True, event_id="4-a"),
         course_event("third", THIRD, True, event_id="4-b"),
         course_event("demo", DEMO, True, event_id="4-c"),
         course_event("failer", OTHER, False, event_id="4-d"),
         ccx_event("ccx", CCX_OTHER, OTHER, True, event_id="4-e"))
    assert awarded("ex4") == {"other": "4-a", "third": "4-b"}


# (5) A specific course ------------------------------------------------------------------
def test_example_5_specific_course(services, synced):
    setup(services, synced, "ex5", [requirement(
        "demo", is_passing_true(), rule("course.course_key", DEMO))])
    feed(services,
         course_event("demo", DEMO, True, event_id="5-a"),
         course_event("other", OTHER, True, event_id="5-b"),
         course_event("failer", DEMO, False, event_id="5-c"),
         ccx_event("ccx", CCX_1, DEMO, True, event_id="5-d"))
    assert awarded("ex5") == {"demo": "5-a"}


# (6) Multiple courses: Demo AND Other ---------------------------------------------------
def test_example_6_demo_and_other(services, synced):
    setup(services, synced, "ex6", [
        requirement("demo", is_passing_true("True", "="), rule("course.course_key", DEMO, "="),
                    group="A"),
        requirement("other", is_passing_true("True", "="), rule("course.course_key", OTHER, "="),
                    group="B"),
    ])
    feed(services,
         course_event("both", DEMO, True, event_id="6-a"),
         course_event("only-other", OTHER, True, event_id="6-b"),
         course_event("half", DEMO, False, event_id="6-c"),
         course_event("half", OTHER, True, event_id="6-d"))
    # Never after one course alone.
    assert awarded("ex6") == {}
    assert groups_done("both", "ex6") == 1
    assert groups_done("only-other", "ex6") == 1
    assert groups_done("half", "ex6") == 1
    feed(services, course_event("both", OTHER, True, event_id="6-e"))
    assert awarded("ex6") == {"both": "6-e"}
    assert groups_done("both", "ex6") == 2


# (7) A specific CCX course --------------------------------------------------------------
def test_example_7_specific_ccx(services, synced):
    setup(services, synced, "ex7", [requirement(
        "ccx1", is_passing_true(), rule("course.ccx_course_key", CCX_1),
        event_type=CCX_COURSE_PASSING)])
    feed(services,
         ccx_event("ccx1", CCX_1, DEMO, True, event_id="7-a"),
         ccx_event("ccx2", CCX_2, DEMO, True, event_id="7-b"),
         ccx_event("failer", CCX_1, DEMO, False, event_id="7-c"),
         course_event("course", DEMO, True, event_id="7-d"))
    assert awarded("ex7") == {"ccx1": "7-a"}


# (8) Any CCX of a specific master course ------------------------------------------------
def test_example_8_any_ccx_of_demo(services, synced):
    setup(services, synced, "ex8", [requirement(
        "ccx-of-demo", is_passing_true(), rule("course.master_course_key", DEMO),
        event_type=CCX_COURSE_PASSING)])
    feed(services,
         ccx_event("ccx1", CCX_1, DEMO, True, event_id="8-a"),
         ccx_event("ccx5", CCX_5, DEMO, True, event_id="8-b"),
         ccx_event("ccxo", CCX_OTHER, OTHER, True, event_id="8-c"),
         ccx_event("failer", CCX_1, DEMO, False, event_id="8-d"),
         course_event("course", DEMO, True, event_id="8-e"))
    assert awarded("ex8") == {"ccx1": "8-a", "ccx5": "8-b"}


# (9) Any CCX of a master course except one ----------------------------------------------
def test_example_9_ccx_of_demo_except_ccx2(services, synced):
    setup(services, synced, "ex9", [requirement(
        "ccx-of-demo", is_passing_true(), rule("course.master_course_key", DEMO),
        rule("course.ccx_course_key", CCX_2, op="ne"), event_type=CCX_COURSE_PASSING)])
    feed(services,
         ccx_event("ccx1", CCX_1, DEMO, True, event_id="9-a"),
         ccx_event("ccx3", CCX_3, DEMO, True, event_id="9-b"),
         ccx_event("ccx2", CCX_2, DEMO, True, event_id="9-c"),
         ccx_event("ccxo", CCX_OTHER, OTHER, True, event_id="9-d"),
         ccx_event("failer", CCX_1, DEMO, False, event_id="9-e"))
    assert awarded("ex9") == {"ccx1": "9-a", "ccx3": "9-b"}


# (10) Demo OR Other ---------------------------------------------------------------------
def test_example_10_demo_or_other(services, synced):
    setup(services, synced, "ex10", [
        requirement("demo", is_passing_true(), rule("course.course_key", DEMO), group="A"),
        requirement("other", is_passing_true(), rule("course.course_key", OTHER), group="A"),
    ])
    feed(services,
         course_event("demo", DEMO, True, event_id="10-a"),
         course_event("other", OTHER, True, event_id="10-b"),
         course_event("third", THIRD, True, event_id="10-c"),
         course_event("failer", DEMO, False, event_id="10-d"),
         course_event("failer", OTHER, False, event_id="10-e"))
    assert awarded("ex10") == {"demo": "10-a", "other": "10-b"}
    # Passing the second course too changes nothing: one badge.
    feed(services, course_event("demo", OTHER, True, event_id="10-f"))
    assert awarded("ex10") == {"demo": "10-a", "other": "10-b"}
    assert Badge.select().count() == 2


# (11) Demo or any of its CCX except ccx@3 -----------------------------------------------
def test_example_11_demo_or_its_ccx_except_ccx3(services, synced):
    setup(services, synced, "ex11", [
        requirement("demo", is_passing_true(), rule("course.course_key", DEMO), group="A",
                    event_type=COURSE_PASSING),
        requirement("ccx", is_passing_true("yes"), rule("course.master_course_key", DEMO),
                    rule("course.ccx_course_key", CCX_3, op="!="), group="A",
                    event_type=CCX_COURSE_PASSING),
    ])
    feed(services,
         course_event("demo", DEMO, True, event_id="11-a"),
         ccx_event("ccx1", CCX_1, DEMO, True, event_id="11-b"),
         ccx_event("ccx3", CCX_3, DEMO, True, event_id="11-c"),
         course_event("other", OTHER, True, event_id="11-d"),
         ccx_event("ccxo", CCX_OTHER, OTHER, True, event_id="11-e"),
         ccx_event("failer", CCX_1, DEMO, False, event_id="11-f"),
         course_event("failer", DEMO, False, event_id="11-g"))
    assert awarded("ex11") == {"demo": "11-a", "ccx1": "11-b"}
    assert groups_done("ccx3", "ex11") == 0
    # Every event was processed (none ignored or rejected) and only two awarded.
    assert IntakeRecord.select().where(IntakeRecord.outcome == "processed").count() == 7
    assert "awarded" in IntakeRecord.get(IntakeRecord.ref_id == "11-b").effects
    assert IntakeRecord.get(IntakeRecord.ref_id == "11-c").effects == ""
