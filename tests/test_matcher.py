"""The compiled matcher evaluates only the candidates an event's values point at."""

from __future__ import annotations

from dataclasses import dataclass, field

from badgetui.domain.rules import Rule
from badgetui.services.common import config_generation
from badgetui.services.matcher import RuleIndex
from badgetui.store.models import Fulfillment
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config


class CountingRule:
    """A Rule that counts how often it is evaluated."""

    def __init__(self, path: str, op: str, value: str, calls: list[str]) -> None:
        self.rule = Rule(path, op, value)
        self.calls = calls
        self.op, self.parts, self.expected = self.rule.op, self.rule.parts, self.rule.expected

    def matches(self, payload: dict) -> bool:
        self.calls.append(self.rule.path)
        return self.rule.matches(payload)


@dataclass
class Item:
    name: str
    rules: tuple = field(default_factory=tuple)


def payload(course: str, passing: bool = True) -> dict:
    return {"is_passing": passing, "course": {"course_key": course}}


def test_index_buckets_by_most_selective_eq_rule():
    calls: list[str] = []
    items = [
        Item(f"c{n}", (CountingRule("is_passing", "eq", "true", calls),
                       CountingRule("course.course_key", "eq", f"course-{n}", calls)))
        for n in range(100)
    ]
    not_demo = Item("not-demo", (CountingRule("is_passing", "eq", "true", calls),
                                 CountingRule("course.course_key", "ne", "course-1", calls)))
    any_event = Item("any")
    index = RuleIndex.build([*items, not_demo, any_event])
    assert set(index.by_path) == {("is_passing",), ("course", "course_key")}
    assert len(index.by_path[("course", "course_key")]) == 100
    # the rule shared by everybody is never chosen as the bucket key for the course items
    assert [i.name for i in index.by_path[("is_passing",)]["true"]] == ["not-demo"]
    assert [i.name for i in index.always] == ["any"]

    found = index.matches(payload("course-7"))
    assert sorted(i.name for i in found) == ["any", "c7", "not-demo"]
    # 2 rules of c7 + 2 of not-demo, never the other 99 course requirements
    assert len(calls) == 4

    calls.clear()
    assert sorted(i.name for i in index.matches(payload("course-1"))) == ["any", "c1"]
    assert sorted(i.name for i in index.matches(payload("course-7", passing=False))) == ["any"]


def test_missing_bucket_path_skips_the_bucket():
    index = RuleIndex.build([Item("x", (Rule("course.course_key", "eq", "a"),))])
    assert index.matches({"is_passing": True}) == []


def test_matcher_rebuilds_when_configuration_changes(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO))], active=False)))
    generation = config_generation()
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    assert Fulfillment.select().count() == 0  # inactive: ignored entirely
    services.templates.set_active("t1", True)
    assert config_generation() > generation
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    assert Fulfillment.select().count() == 1
