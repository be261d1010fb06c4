from badgetui.store.models import Badge, Progress
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


def test_two_groups_award_only_when_both_done(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO), group="A"),
        requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                    group="B"),
    ])))
    report = services.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    assert report.counts["processed"] == 1
    assert Badge.select().count() == 0
    assert Progress.get().fulfilled_groups == 1
    services.intake.ingest_lines(jsonl(course_event("ann", OTHER)), "t")
    assert Badge.select().where(Badge.status == "awarded").count() == 1
