"""Pure domain: rules, group arithmetic, event parsing, ids, key paths (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from badgetui.domain.config import RuleConfig
from badgetui.domain.events import (
    BADGE_AWARDED,
    BADGE_REVOKED,
    CCX_COURSE_PASSING,
    COURSE_PASSING,
    DEFAULT_EVENTS,
    EventError,
    content_id,
    event_paths,
    parse_line,
    parse_time,
)
from badgetui.domain.progress import (
    GROUP_LETTERS,
    fulfilled_groups,
    group_map,
    is_complete,
    next_free_group,
    ratio,
)
from badgetui.domain.rules import (
    FALSE_WORDS,
    TRUE_WORDS,
    Rule,
    all_match,
    canonical,
    canonical_op,
    first_failing,
)

NOW = datetime(2026, 11, 5, 8, 0, tzinfo=UTC)
CONFIGURED = frozenset(DEFAULT_EVENTS)
DEMO_KEY = "course-v1:OpenedX+DemoX+Demo_Course"

# -- rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["true", "True", "yes", "Yes", "+"])
def test_true_words_are_canonical_on_both_sides(word):
    assert word in TRUE_WORDS
    assert canonical(word) == "true"
    # rule side
    assert Rule("is_passing", "eq", word).matches({"is_passing": True})
    assert not Rule("is_passing", "eq", word).matches({"is_passing": False})
    assert Rule("is_passing", "ne", word).matches({"is_passing": False})
    # payload side: any true word in the payload equals any true word in the rule
    for other in ["true", "True", "yes", "Yes", "+"]:
        assert Rule("flag", "eq", other).matches({"flag": word})
        assert not Rule("flag", "ne", other).matches({"flag": word})
        assert not Rule("flag", "eq", "false").matches({"flag": word})


@pytest.mark.parametrize("word", ["false", "False", "no", "No", "-"])
def test_false_words_are_canonical_on_both_sides(word):
    assert word in FALSE_WORDS
    assert canonical(word) == "false"
    assert Rule("is_passing", "eq", word).matches({"is_passing": False})
    assert not Rule("is_passing", "eq", word).matches({"is_passing": True})
    assert Rule("is_passing", "ne", word).matches({"is_passing": True})
    for other in ["false", "False", "no", "No", "-"]:
        assert Rule("flag", "eq", other).matches({"flag": word})
        assert not Rule("flag", "eq", "yes").matches({"flag": word})


def test_other_spellings_are_not_booleans():
    assert canonical("TRUE") == "TRUE"
    assert canonical("y") == "y"
    assert canonical("1") == "1"
    assert not Rule("is_passing", "eq", "1").matches({"is_passing": True})
    assert not Rule("is_passing", "eq", "TRUE").matches({"is_passing": True})


def test_values_compare_as_text():
    payload = {"user": {"id": 7, "is_active": True}, "score": 0.5, "course": {"n": 10}}
    assert Rule("user.id", "eq", "7").matches(payload)
    assert not Rule("user.id", "eq", "07").matches(payload)
    assert not Rule("user.id", "eq", "7.0").matches(payload)
    assert Rule("user.id", "ne", "8").matches(payload)
    assert Rule("score", "eq", "0.5").matches(payload)
    # no numeric ordering or coercion: "10" is only equal to the text "10"
    assert Rule("course.n", "eq", "10").matches(payload)
    assert not Rule("course.n", "eq", "1e1").matches(payload)
    # a number in the payload and the same digits as a string are the same text
    assert Rule("user.id", "eq", "7").matches({"user": {"id": "7"}})
    assert canonical(7) == "7"


def test_rule_values_are_case_sensitive_text():
    payload = {"course": {"course_key": DEMO_KEY}}
    assert Rule("course.course_key", "eq", DEMO_KEY).matches(payload)
    assert not Rule("course.course_key", "eq", DEMO_KEY.lower()).matches(payload)
    assert Rule("course.course_key", "ne", DEMO_KEY.lower()).matches(payload)


@pytest.mark.parametrize("op", ["eq", "ne", "=", "!="])
@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"course": None},
        {"course": {}},
        {"course": {"course_key": None}},
        {"course": "not-an-object"},
        {"course": ["course_key"]},
    ],
)
def test_missing_or_null_path_never_matches(op, payload):
    assert not Rule("course.course_key", op, "x").matches(payload)
    assert not Rule("course.course_key", op, "").matches(payload)


def test_null_leaf_does_not_match_the_text_none():
    assert not Rule("course.end", "eq", "None").matches({"course": {"end": None}})
    assert not Rule("course.end", "ne", "None").matches({"course": {"end": None}})
    assert not Rule("course.end", "eq", "null").matches({"course": {"end": None}})


def test_empty_string_is_a_value_not_missing():
    payload = {"course": {"display_name": ""}}
    assert Rule("course.display_name", "eq", "").matches(payload)
    assert Rule("course.display_name", "ne", "Demo").matches(payload)


@pytest.mark.parametrize(
    ("spelling", "canonical_name"),
    [
        ("eq", "eq"),
        ("=", "eq"),
        ("==", "eq"),
        ("equals", "eq"),
        (" eq ", "eq"),
        ("ne", "ne"),
        ("!=", "ne"),
        ("not equals", "ne"),
        ("not_equals", "ne"),
    ],
)
def test_operator_aliases(spelling, canonical_name):
    assert canonical_op(spelling) == canonical_name
    rule = Rule("is_passing", spelling, "true")
    assert rule.op == canonical_name
    assert rule.matches({"is_passing": True}) is (canonical_name == "eq")
    assert RuleConfig(path="is_passing", op=spelling, value="true").op == canonical_name


@pytest.mark.parametrize("bad", ["like", "=~", "contains", "", "~=", None, 3])
def test_unknown_operator_is_an_error(bad):
    with pytest.raises(ValueError, match="unknown operator"):
        canonical_op(bad)
    with pytest.raises(ValueError, match="unknown operator"):
        Rule("is_passing", bad, "true")
    with pytest.raises(ValidationError):
        RuleConfig(path="is_passing", op=bad, value="true")


def test_rule_config_normalises_json_values_and_paths():
    assert RuleConfig(path="is_passing", value=True).value == "true"
    assert RuleConfig(path="is_passing", value=False).value == "false"
    assert RuleConfig(path="user.id", value=7).value == "7"
    assert RuleConfig(path=" course.course_key ", value="x").path == "course.course_key"
    for bad in ["", "course.", ".course", "a..b"]:
        with pytest.raises(ValidationError):
            RuleConfig(path=bad, value="x")


def test_all_match_and_first_failing():
    payload = {"is_passing": True, "course": {"course_key": DEMO_KEY}}
    rules = [Rule("is_passing", "eq", "yes"), Rule("course.course_key", "eq", DEMO_KEY)]
    assert all_match(rules, payload)
    assert first_failing(rules, payload) is None
    failing = [rules[0], Rule("course.course_key", "ne", DEMO_KEY), rules[1]]
    assert not all_match(failing, payload)
    assert first_failing(failing, payload) == 1
    # no rules: every event of the type matches
    assert all_match([], payload)
    assert all_match([], {})
    assert first_failing([], {}) is None


# -- progress arithmetic -------------------------------------------------------------------


def test_group_map_collects_requirements_per_letter():
    groups = group_map([(1, "A"), (2, "A"), (3, "B"), ("x", "C")])
    assert groups == {"A": frozenset({1, 2}), "B": frozenset({3}), "C": frozenset({"x"})}
    assert group_map([]) == {}


def test_groups_or_inside_and_across():
    groups = group_map([(1, "A"), (2, "A"), (3, "B")])
    assert fulfilled_groups(groups, set()) == 0
    assert ratio(groups, set()) == 0.0
    assert not is_complete(groups, set())
    # one group out of two, whichever requirement of it
    for done in ({1}, {2}, {1, 2}):
        assert fulfilled_groups(groups, done) == 1
        assert ratio(groups, done) == 0.5
        assert not is_complete(groups, done)
    assert ratio(groups, {3}) == 0.5
    assert not is_complete(groups, {3})
    for done in ({1, 3}, {2, 3}, {1, 2, 3}):
        assert ratio(groups, done) == 1.0
        assert is_complete(groups, done)
    # fulfilments of requirements outside the template do not count
    assert ratio(groups, {99, 100}) == 0.0
    assert not is_complete(groups, {99, 3})


def test_three_groups_ratio_steps():
    groups = group_map([("a", "A"), ("b", "B"), ("c", "C")])
    assert ratio(groups, {"a"}) == pytest.approx(1 / 3)
    assert ratio(groups, {"a", "c"}) == pytest.approx(2 / 3)
    assert is_complete(groups, {"a", "b", "c"})


def test_template_without_requirements_is_never_complete():
    assert ratio({}, set()) == 0.0
    assert not is_complete({}, set())
    assert not is_complete({}, {1})


def test_next_free_group():
    assert next_free_group([]) == "A"
    assert next_free_group(["A"]) == "B"
    assert next_free_group(["B", "A", "A"]) == "C"
    assert next_free_group(["C"]) == "A"
    assert next_free_group(iter(["A", "B", "D"])) == "C"
    assert next_free_group(GROUP_LETTERS[:-1]) == "Z"
    with pytest.raises(ValueError):
        next_free_group(GROUP_LETTERS)


# -- event parsing (openedx-events.md §5) --------------------------------------------------

USER42 = {"id": 42, "is_active": True,
          "pii": {"username": "learner42", "email": "learner42@example.org", "name": "Learner 42"}}

EXAMPLE_COURSE = {
    "id": "2f0c5a8e-9f7b-11ef-8c3a-0242ac120005",
    "event_type": COURSE_PASSING,
    "time": "2026-11-01T09:00:00.123456+00:00",
    "data": {"course_passing_status": {
        "is_passing": True,
        "course": {"course_key": DEMO_KEY, "display_name": "", "start": None, "end": None},
        "user": USER42}},
}
EXAMPLE_CCX = {
    "id": "5a1d7c40-9f7b-11ef-8c3a-0242ac120005",
    "event_type": CCX_COURSE_PASSING,
    "time": "2026-11-01T09:05:00.000001+00:00",
    "data": {"course_passing_status": {
        "is_passing": True,
        "user": USER42,
        "course": {"ccx_course_key": "ccx-v1:OpenedX+DemoX+Demo_Course+ccx@1",
                   "master_course_key": DEMO_KEY, "display_name": "", "coach_email": "",
                   "start": None, "end": None, "max_students_allowed": None}}},
}
TEMPLATE_DATA = {"uuid": "b4f9e2a1-7c3d-4e5f-8a9b-0c1d2e3f4a5b", "origin": "credly",
                 "name": "Demo Course Completion"}
EXAMPLE_AWARDED = {
    "id": "9b2e4f10-9f7b-11ef-a1b2-0242ac120007",
    "event_type": BADGE_AWARDED,
    "time": "2026-11-01T09:00:03.500000+00:00",
    "data": {"badge": {
        "uuid": "3c1e9a52-6d0b-4f3e-9a7c-5b2d8e4f1a60",
        "user": USER42,
        "template": {**TEMPLATE_DATA,
                     "description": "Awarded for passing the Open edX Demo course.",
                     "image_url": "https://images.credly.com/images/"
                                  "b4f9e2a1-7c3d-4e5f-8a9b-0c1d2e3f4a5b/image.png"}}},
}
EXAMPLE_REVOKED = {
    "id": "c7d8e9f0-9f7c-11ef-a1b2-0242ac120007",
    "event_type": BADGE_REVOKED,
    "time": "2026-11-02T10:00:00+00:00",
    "data": {"badge": {
        "uuid": "3c1e9a52-6d0b-4f3e-9a7c-5b2d8e4f1a60",
        "user": USER42,
        "template": {**TEMPLATE_DATA, "description": None, "image_url": None}}},
}
ALL_FOUR = frozenset({COURSE_PASSING, CCX_COURSE_PASSING, BADGE_AWARDED, BADGE_REVOKED})


def line(obj: object) -> str:
    return json.dumps(obj)


def test_default_configured_events_are_the_two_course_events():
    assert set(DEFAULT_EVENTS) == {COURSE_PASSING, CCX_COURSE_PASSING}


def test_example_course_event_parses():
    event = parse_line(line(EXAMPLE_COURSE), 1, CONFIGURED, NOW)
    assert event.status == "ok", event.reason
    assert event.id == EXAMPLE_COURSE["id"]
    assert event.event_type == COURSE_PASSING
    assert event.time == datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert event.line == 1
    assert event.username == "learner42"
    assert event.payload == EXAMPLE_COURSE["data"]["course_passing_status"]
    assert Rule("course.course_key", "eq", DEMO_KEY).matches(event.payload)
    assert Rule("is_passing", "eq", "true").matches(event.payload)
    assert Rule("user.pii.email", "eq", "learner42@example.org").matches(event.payload)


def test_example_ccx_event_parses():
    event = parse_line(line(EXAMPLE_CCX), 2, CONFIGURED, NOW)
    assert event.status == "ok", event.reason
    assert event.event_type == CCX_COURSE_PASSING
    assert event.time == datetime(2026, 11, 1, 9, 5, 0, 1, tzinfo=UTC)
    assert event.username == "learner42"
    assert event.payload == EXAMPLE_CCX["data"]["course_passing_status"]
    assert list(event.payload) == ["is_passing", "user", "course"]
    assert Rule("course.master_course_key", "eq", DEMO_KEY).matches(event.payload)


def test_failing_counterpart_parses_as_not_passing():
    failing = {**EXAMPLE_COURSE, "id": "fail-1", "time": "2026-11-03T09:00:00+00:00",
               "data": {"course_passing_status": {
                   **EXAMPLE_COURSE["data"]["course_passing_status"], "is_passing": False}}}
    event = parse_line(line(failing), 1, CONFIGURED, NOW)
    assert event.status == "ok"
    assert event.payload["is_passing"] is False
    assert Rule("is_passing", "eq", "false").matches(event.payload)


@pytest.mark.parametrize("example", [EXAMPLE_AWARDED, EXAMPLE_REVOKED])
def test_badge_examples_are_ignored_by_default_and_parse_when_configured(example):
    ignored = parse_line(line(example), 3, CONFIGURED, NOW)
    assert ignored.status == "ignored"
    assert "not configured" in ignored.reason
    assert ignored.id == example["id"]
    assert ignored.line == 3

    event = parse_line(line(example), 3, ALL_FOUR, NOW)
    assert event.status == "ok", event.reason
    assert event.username == "learner42"
    assert event.payload["uuid"] == "3c1e9a52-6d0b-4f3e-9a7c-5b2d8e4f1a60"
    assert event.payload["template"]["origin"] == "credly"
    assert event.payload["template"] == example["data"]["badge"]["template"]


def test_omitted_defaults_are_filled_in():
    minimal = {"id": "m1", "event_type": COURSE_PASSING,
               "data": {"course_passing_status": {
                   "is_passing": True, "course": {"course_key": DEMO_KEY},
                   "user": {"id": 1, "is_active": True,
                            "pii": {"username": "u", "email": "u@example.org"}}}}}
    event = parse_line(line(minimal), 1, CONFIGURED, NOW)
    assert event.status == "ok", event.reason
    assert event.payload["course"] == {"course_key": DEMO_KEY, "display_name": "",
                                       "start": None, "end": None}
    assert event.payload["user"]["pii"]["name"] == ""
    assert event.time == NOW  # no time: the intake time


def test_bus_envelope_is_accepted():
    envelope = {"metadata": {"id": "bus-1", "type": COURSE_PASSING,
                             "time": "2026-11-01T09:00:00+00:00", "source": "openedx/lms/web",
                             "minorversion": 0},
                "data": EXAMPLE_COURSE["data"]}
    event = parse_line(line(envelope), 1, CONFIGURED, NOW)
    assert event.status == "ok", event.reason
    assert event.id == "bus-1"
    assert event.event_type == COURSE_PASSING
    assert event.payload == EXAMPLE_COURSE["data"]["course_passing_status"]
    alt = {"metadata": {"id": "bus-2", "event_type": CCX_COURSE_PASSING},
           "data": EXAMPLE_CCX["data"]}
    assert parse_line(line(alt), 1, CONFIGURED, NOW).status == "ok"


def _passing(**overrides: object) -> dict:
    data = dict(EXAMPLE_COURSE["data"]["course_passing_status"])
    data.update(overrides)
    return {"id": "neg", "event_type": COURSE_PASSING, "data": {"course_passing_status": data}}


NEGATIVE = [
    # (text, status, reason fragment)
    (line({"id": "e1", "event_type": COURSE_PASSING,
           "data": {"course_passing_status": {"is_passing": True,
                                              "course": {"course_key": DEMO_KEY}}}}),
     "dropped", "no user data"),
    (line({"id": "e2", "event_type": COURSE_PASSING,
           "data": {"course_passing_status": {
               "is_passing": True, "course": {"course_key": DEMO_KEY},
               "user": {"id": 7, "is_active": True, "pii": {"email": "x@example.org"}}}}}),
     "dropped", "no username"),
    (line({"id": "e3", "event_type": "org.openedx.learning.certificate.created.v1",
           "data": {"certificate": {}}}),
     "ignored", "not configured"),
    ('{"id": "e4", "event_type": "org.openedx.learning.course.passing.status.updated.v1", '
     '"data": {',
     "rejected", "not JSON"),
    (line({"id": "e5", "data": EXAMPLE_COURSE["data"]}), "rejected", "no event_type"),
    (line({"id": "e6", "event_type": COURSE_PASSING, "data": EXAMPLE_AWARDED["data"]}),
     "rejected", "data key does not fit"),
    (line(_passing(is_passing="yes")), "rejected", "is_passing is not a boolean"),
    (line(_passing(course={"display_name": "Demo"})), "rejected", "course_key is missing"),
    (line({**EXAMPLE_COURSE, "id": "e9", "time": "2026-11-01 09:00"}), "rejected",
     "no UTC offset"),
    ("[1, 2, 3]", "rejected", "not an object"),
]


@pytest.mark.parametrize(("text", "status", "reason"), NEGATIVE)
def test_negative_examples(text, status, reason):
    event = parse_line(text, 17, CONFIGURED, NOW)
    assert event.status == status
    assert reason in event.reason
    assert event.line == 17
    assert event.payload is None
    if status == "rejected":
        assert event.raw == text


def test_negative_example_ids_are_kept_when_readable():
    for text, _, _ in NEGATIVE:
        obj = None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            continue
        event = parse_line(text, 1, CONFIGURED, NOW)
        if isinstance(obj, dict):
            assert event.id == obj["id"]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"user": {"id": "7", "is_active": True, "pii": {"username": "u", "email": "e"}}},
         "user.id is not an integer"),
        ({"user": {"id": 7, "is_active": "yes", "pii": {"username": "u", "email": "e"}}},
         "user.is_active is not a boolean"),
        ({"user": "learner42"}, "user is not an object"),
        ({"course": {"course_key": 5}}, "course_key is not a string"),
        ({"is_passing": 1}, "is_passing is not a boolean"),
        ({"is_passing": None}, "is_passing"),
    ],
)
def test_wrong_types_are_rejected_with_the_path(override, fragment):
    event = parse_line(line(_passing(**override)), 4, CONFIGURED, NOW)
    assert event.status == "rejected"
    assert fragment in event.reason


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"id": 5, "event_type": COURSE_PASSING, "data": EXAMPLE_COURSE["data"]}, "id"),
        ({"id": "", "event_type": COURSE_PASSING, "data": EXAMPLE_COURSE["data"]}, "id"),
        ({"id": "x", "event_type": 5, "data": EXAMPLE_COURSE["data"]}, "event_type"),
        ({"id": "x", "event_type": COURSE_PASSING}, "data is missing"),
        ({"id": "x", "event_type": COURSE_PASSING, "data": [1]}, "data is not an object"),
        ({"id": "x", "event_type": COURSE_PASSING, "data": {"course_passing_status": 3}},
         "not an object"),
        ({**EXAMPLE_COURSE, "time": 12}, "time"),
        ({**EXAMPLE_COURSE, "time": "yesterday"}, "not ISO-8601"),
        ({"metadata": "x", "data": {}}, "metadata"),
    ],
)
def test_wrong_shapes_are_rejected(obj, fragment):
    event = parse_line(line(obj), 9, CONFIGURED, NOW)
    assert event.status == "rejected"
    assert fragment in event.reason
    assert event.line == 9


@pytest.mark.parametrize("text", ["", "not json", "{", '{"id": ', "nul", '"text"', "12", "null"])
def test_non_objects_are_rejected(text):
    event = parse_line(text, 5, CONFIGURED, NOW)
    assert event.status == "rejected"
    assert event.reason
    assert event.line == 5


def test_trailing_newline_is_not_part_of_the_line():
    event = parse_line(line(EXAMPLE_COURSE) + "\r\n", 1, CONFIGURED, NOW)
    assert event.status == "ok"


# -- time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T10:00:00+01:00", datetime(2026, 11, 1, 9, 0, tzinfo=UTC)),
        ("2026-11-01T04:30:00-04:30", datetime(2026, 11, 1, 9, 0, tzinfo=UTC)),
        ("2026-11-02T01:15:00.250000+14:00", datetime(2026, 11, 1, 11, 15, 0, 250000, tzinfo=UTC)),
        ("2026-11-01T09:00:00Z", datetime(2026, 11, 1, 9, 0, tzinfo=UTC)),
        ("2026-11-01T09:00:00+00:00", datetime(2026, 11, 1, 9, 0, tzinfo=UTC)),
    ],
)
def test_times_are_converted_to_utc(text, expected):
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC
    event = parse_line(line({**EXAMPLE_COURSE, "time": text}), 1, CONFIGURED, NOW)
    assert event.status == "ok"
    assert event.time == expected
    assert event.time.tzinfo is UTC


def test_naive_time_is_refused():
    with pytest.raises(EventError, match="offset"):
        parse_time("2026-11-01T09:00:00")
    with pytest.raises(EventError):
        parse_time(None)
    with pytest.raises(EventError):
        parse_time(1730451600)
    assert parse_time("2026-11-01T09:00:00+02:00") == datetime(
        2026, 11, 1, 9, tzinfo=timezone(timedelta(hours=2))
    )
    assert parse_time("2026-11-01T09:00:00+02:00").hour == 7


# -- ids -----------------------------------------------------------------------------------


def _without_id(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "id"}


def test_content_hash_id_is_stable_for_identical_content():
    obj = _without_id(EXAMPLE_COURSE)
    first = parse_line(line(obj), 1, CONFIGURED, NOW)
    second = parse_line(line(obj), 99, CONFIGURED, NOW + timedelta(days=3))
    assert first.status == second.status == "ok"
    assert first.id == second.id
    assert first.id.startswith("sha256:")
    # key order and whitespace do not change the content
    reordered = json.dumps(dict(reversed(list(obj.items()))), indent=2).replace("\n", " ")
    assert parse_line(reordered, 1, CONFIGURED, NOW).id == first.id
    assert content_id(obj) == first.id
    assert content_id(json.loads(reordered)) == first.id


def test_content_hash_differs_for_different_content():
    obj = _without_id(EXAMPLE_COURSE)
    failing = json.loads(json.dumps(obj))
    failing["data"]["course_passing_status"]["is_passing"] = False
    later = {**obj, "time": "2026-11-01T09:00:01+00:00"}
    ids = {content_id(obj), content_id(failing), content_id(later)}
    assert len(ids) == 3
    assert parse_line(line(failing), 1, CONFIGURED, NOW).id == content_id(failing)


def test_explicit_id_wins_over_hash():
    assert parse_line(line(EXAMPLE_COURSE), 1, CONFIGURED, NOW).id == EXAMPLE_COURSE["id"]


def test_ignored_and_dropped_events_without_id_get_a_hash_id():
    ignored = {"event_type": "org.openedx.learning.certificate.created.v1", "data": {}}
    assert parse_line(line(ignored), 1, CONFIGURED, NOW).id == content_id(ignored)
    dropped = {"event_type": COURSE_PASSING,
               "data": {"course_passing_status": {"is_passing": True,
                                                  "course": {"course_key": DEMO_KEY}}}}
    event = parse_line(line(dropped), 1, CONFIGURED, NOW)
    assert event.status == "dropped"
    assert event.id == content_id(dropped)


# -- key paths -----------------------------------------------------------------------------


def test_ccx_event_paths_in_wire_order():
    paths = event_paths(CCX_COURSE_PASSING)
    assert list(paths) == [
        "is_passing",
        "user.id",
        "user.is_active",
        "user.pii.username",
        "user.pii.email",
        "user.pii.name",
        "course.ccx_course_key",
        "course.master_course_key",
        "course.display_name",
        "course.coach_email",
        "course.start",
        "course.end",
        "course.max_students_allowed",
    ]
    assert paths["is_passing"] is bool
    assert paths["user.id"] is int
    assert paths["user.is_active"] is bool
    assert paths["course.master_course_key"] is str
    assert paths["course.start"] is str
    assert paths["course.max_students_allowed"] is int


def test_course_event_paths_in_wire_order():
    assert list(event_paths(COURSE_PASSING)) == [
        "is_passing",
        "course.course_key",
        "course.display_name",
        "course.start",
        "course.end",
        "user.id",
        "user.is_active",
        "user.pii.username",
        "user.pii.email",
        "user.pii.name",
    ]


def test_badge_event_paths_and_unknown_types():
    paths = event_paths(BADGE_AWARDED)
    assert list(paths)[:2] == ["uuid", "user.id"]
    assert "template.origin" in paths
    assert event_paths(BADGE_REVOKED) == paths
    assert event_paths("org.openedx.learning.course.persistent_grade_summary.changed.v1") is None
