"""Typed rules (issue 13, item 6): gt ge lt le in not_in exists, numbers and dates compared as
numbers and dates, eq/ne exactly as before, lint catching a number compared with text, and the
configuration format's version 2 reading version 1 unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from badgetui.domain.config import BadgeConfig, TemplateConfig, dump_config
from badgetui.domain.lint import lint_template
from badgetui.domain.rules import MISSING, Rule, canonical, resolve
from badgetui.services.config_io import ConfigImportError, export_config
from badgetui.store.models import Badge, DataRule, Learner
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config

PASSING = "org.openedx.learning.course.passing.status.updated.v1"
PAYLOAD: dict[str, Any] = {
    "grade": 0.85, "count": "12", "flag": True, "nothing": None,
    "course": {"start": "2026-01-05T10:00:00+01:00", "day": "2026-01-05", "key": DEMO},
}


@pytest.mark.parametrize(("path", "op", "value", "expected"), [
    ("grade", "ge", "0.85", True), ("grade", "gt", "0.85", False), ("grade", ">", "0.8", True),
    ("grade", "lt", "1", True), ("grade", "le", "0.849", False),
    ("count", "gt", "9", True),  # numeric text is a number: 12 > 9 (as text "12" < "9")
    ("count", "lt", "100", True),
    ("course.start", "lt", "2026-01-05T09:30:00Z", True),  # 09:00 UTC
    ("course.start", "gt", "2026-01-05", True), ("course.day", "ge", "2026-01-05", True),
    ("course.day", "lt", "2026-01-05T00:00:01Z", True),
    ("course.key", "gt", "a", False),  # text is never ordered
    ("course.key", "gt", "5", False), ("grade", "gt", "2026-01-01", False),  # mixed kinds
    ("missing", "lt", "5", False), ("nothing", "lt", "5", False), ("flag", "gt", "0", False),
    ("course.key", "in", f"x, {DEMO}", True), ("course.key", "in", json.dumps(["x"]), False),
    ("course.key", "not_in", "x,y", True), ("course.key", "not_in", DEMO, False),
    ("missing", "not_in", "x", False), ("grade", "in", "[1, 0.85]", True),
    ("count", "in", "12.0", True), ("flag", "in", "yes, maybe", True),
    ("course.key", "exists", "true", True), ("nothing", "exists", "true", False),
    ("missing", "exists", "false", True), ("nothing", "exists", "no", True),
    ("grade", "exists", "false", False),
])
def test_typed_operators(path, op, value, expected):
    assert Rule(path, op, value).matches(PAYLOAD) is expected


def _old_text_rule(path: str, op: str, value: str, payload: dict[str, Any]) -> bool:
    """eq/ne as they were before typed operators (the reference)."""
    actual = canonical(resolve(payload, path.split(".")))
    if actual is None:
        return False
    return actual == canonical(value) if op == "eq" else actual != canonical(value)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(
    allow_nan=False, allow_infinity=False), st.sampled_from(
    ["true", "yes", "-", "12", "12.0", "2026-01-05", "", " 1", "x"]), st.text(max_size=6))


@settings(max_examples=400, derandomize=True, database=None)
@given(value=scalars, expected=st.one_of(st.sampled_from(
    ["true", "false", "yes", "No", "12", "12.0", "", "x", "None"]), st.text(max_size=6)),
    op=st.sampled_from(["eq", "ne"]), present=st.booleans())
def test_eq_and_ne_keep_their_meaning(value, expected, op, present):
    payload = {"a": {"b": value}} if present else {"a": {}}
    assert Rule("a.b", op, expected).matches(payload) is _old_text_rule("a.b", op, expected,
                                                                        payload)


def test_missing_is_missing():
    assert resolve(PAYLOAD, ["course", "nope"]) is MISSING


def _lint(*rules: dict[str, str]) -> list[str]:
    tpl = TemplateConfig.model_validate(template_config("t1", [requirement("r1", *rules)]))
    return [f.message for f in lint_template(tpl, configured_events=[PASSING])
            if f.level == "error"]


def test_lint_catches_typed_rules_that_cannot_compare():
    assert _lint(rule("user.id", "100", "gt"), rule("course.start", "2026-01-01", "ge")) == []
    (number_vs_text,) = _lint(rule("course.course_key", "5", "gt"))
    assert "course.course_key is text (or a date), compared with a number" in number_vs_text
    (text,) = _lint(rule("user.id", "abc", "lt"))
    assert "'abc' is neither a number nor a date" in text
    (date_vs_number,) = _lint(rule("user.id", "2026-01-01", "lt"))
    assert "user.id is a number, compared with a date" in date_vs_number
    (boolean,) = _lint(rule("is_passing", "1", "gt"))
    assert "is_passing is a boolean" in boolean
    assert "exists takes true or false" in _lint(rule("user.id", "maybe", "exists"))[0]
    assert "lists no value" in _lint(rule("user.id", " , ", "in"))[0]


def test_version_1_reads_unchanged_and_version_2_is_needed_for_typed_operators(services,
                                                                               synced):
    synced("t1")
    v1 = config_text(template_config("t1", [requirement("r1", rule("is_passing", "true"),
                                                        rule("course.course_key", DEMO))]))
    services.config.import_text(v1)
    exported = export_config()
    assert json.loads(exported)["version"] == 1  # nothing typed: still a version 1 file
    typed = json.dumps({"version": 1, "templates": [template_config("t1", [requirement(
        "r1", rule("user.id", "100", "gt"))])]})
    with pytest.raises(ConfigImportError, match=r"operator 'gt' needs \"version\": 2"):
        services.config.import_text(typed)
    v2 = typed.replace('"version": 1', '"version": 2')
    services.config.import_text(v2)
    assert [(r.path, r.op, r.value) for r in DataRule.select()] == [("user.id", "gt", "100")]
    again = export_config()
    assert json.loads(again)["version"] == 2
    assert services.config.import_text(again).changes == []  # round trip


def test_dump_writes_the_version_its_rules_need():
    plain = BadgeConfig.model_validate({"templates": [template_config("t", [requirement(
        "r", rule("is_passing", "true"))])]})
    typed = BadgeConfig.model_validate({"templates": [template_config("t", [requirement(
        "r", rule("user.id", "1", "ge"))])]})
    assert json.loads(dump_config(plain))["version"] == 1
    assert json.loads(dump_config(typed))["version"] == 2


def test_processing_compares_numbers_and_dates(services, synced):
    """Through intake: the learner's LMS id as a number, the course start as a date."""
    synced("t1")
    services.config.import_text(json.dumps({"version": 2, "templates": [template_config("t1", [
        requirement("r1", rule("user.id", "9", "gt"), rule("course.start", "2026-01-01", "ge"),
                    rule("course.course_key", f"{DEMO},other", "in"))])]}))

    def event(username: str, uid: int, start: str | None) -> dict[str, Any]:
        e = course_event(username, DEMO, uid=uid)
        e["data"]["course_passing_status"]["course"]["start"] = start
        return e

    report = services.intake.ingest_lines(jsonl(
        event("big-new", 12, "2026-02-01T00:00:00Z"),  # 12 > 9 as numbers ("12" < "9" as text)
        event("small", 7, "2026-02-01T00:00:00Z"),
        event("big-old", 12, "2025-12-31T23:59:59Z"),
        event("no-start", 12, None)), "typed")
    assert report.awarded == 1
    assert [b.learner.username for b in Badge.select().join(Learner)] == ["big-new"]
