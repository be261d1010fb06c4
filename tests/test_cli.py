"""The headless CLI, run as a user runs it: a subprocess on a real database (a SQLite file, or
a PostgreSQL schema when BADGETUI_TEST_POSTGRES is set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from badgetui.store.models import Badge, DataRule, IntakeRecord, Requirement, Template
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    penalty,
    requirement,
    rule,
    template_config,
)

DEMO_REQS = [
    requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO), group="A"),
    requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER), group="B"),
]


def run(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    env["BADGETUI_DB"] = db_url
    env["BADGETUI_CONFIG"] = os.environ["BADGETUI_CONFIG"]  # the test's own, missing file
    if args[:2] == ("events", "ingest"):
        args = (*args, "--no-deliver")  # these accounts exist nowhere; delivery has its own tests
    return subprocess.run(
        [sys.executable, "-m", "badgetui", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
    )


@pytest.fixture
def seeded(services, synced, db_url):
    synced("t-demo", "t-empty")
    services.config.import_text(config_text(template_config("t-demo", DEMO_REQS, [
        penalty(["demo"], rule("is_passing", "false"), rule("course.course_key", DEMO)),
    ])))
    services.close()
    return db_url


def write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ingest_counts_and_bad_lines_reported_with_line_numbers(seeded, tmp_path):
    good = [json.dumps(course_event("ann", DEMO)), json.dumps(course_event("ann", OTHER))]
    bad = [
        "this is not json",
        json.dumps({"id": "x1", "data": {"course_passing_status": {}}}),
        json.dumps({**course_event("bob", DEMO), "id": "x2",
                    "data": {"course_passing_status": {"is_passing": "yes"}}}),
        json.dumps({"id": "x3", "event_type": "org.openedx.learning.unknown.v1", "data": {}}),
        json.dumps({"id": "x4", "event_type": course_event("c", DEMO)["event_type"],
                    "data": {"course_passing_status": {"is_passing": True,
                                                       "course": {"course_key": DEMO}}}}),
        json.dumps({"id": "x5", "event_type": course_event("c", DEMO)["event_type"],
                    "data": {"course_passing_status": {
                        "is_passing": True, "course": {"course_key": 5},
                        "user": {"id": 1, "is_active": True,
                                 "pii": {"username": "c", "email": "c@x"}}}}}),
    ]
    path = write_lines(tmp_path, [good[0], *bad, good[1]])
    result = run(seeded, "events", "ingest", str(path), "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["processed"] == 2
    assert counts["rejected"] == 4
    assert counts["ignored"] == 1
    assert counts["dropped"] == 1
    assert counts["awarded"] == 1
    errors = result.stderr.strip().splitlines()
    assert errors[0].endswith(":2: rejected: not JSON (Expecting value at column 1)")
    assert ":3: rejected: no event_type" in errors[1]
    assert ":4: rejected: course_passing_status.is_passing is not a boolean" in errors[2]
    assert ":6: dropped: no user data" in errors[3]
    assert ":7: rejected: course_passing_status.course.course_key is not a string" in errors[4]
    assert Badge.select().count() == 1
    # the log keeps every line, in order, with its reason
    outcomes = [(r.line, r.outcome) for r in IntakeRecord.select().order_by(IntakeRecord.id)]
    assert outcomes == [(1, "processed"), (2, "rejected"), (3, "rejected"), (4, "rejected"),
                        (5, "ignored"), (6, "dropped"), (7, "rejected"), (8, "processed")]


def test_ingest_twice_changes_nothing_and_stdin_works(seeded, tmp_path):
    lines = [json.dumps(course_event("ann", DEMO)), json.dumps(course_event("ann", OTHER))]
    first = run(seeded, "events", "ingest", "-", "--json", stdin="\n".join(lines))
    second = run(seeded, "events", "ingest", "-", "--json", stdin="\n".join(lines))
    assert json.loads(first.stdout)["awarded"] == 1
    again = json.loads(second.stdout)
    assert again["duplicate"] == 2 and again["processed"] == 0 and again["awarded"] == 0
    assert Badge.select().count() == 1


def test_ingest_missing_file_is_one_line_error(seeded, tmp_path):
    result = run(seeded, "events", "ingest", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"badgetui: error: cannot read {tmp_path / 'nope.jsonl'}: no such file"
    ]


def test_badges_list_json_and_why(seeded, tmp_path):
    demo = course_event("ann", DEMO, event_id="pass-demo")
    other = course_event("ann", OTHER, event_id="pass-other")
    path = write_lines(tmp_path, [json.dumps(demo), json.dumps(other)])
    assert run(seeded, "events", "ingest", str(path)).returncode == 0
    listed = json.loads(run(seeded, "badges", "list", "--json").stdout)
    assert len(listed) == 1
    badge = listed[0]
    for key in ("username", "provider", "external_template_id", "status", "provider_state",
                "external_id"):
        assert key in badge
    assert (badge["username"], badge["provider"], badge["external_template_id"],
            badge["status"], badge["provider_state"]) == (
        "ann", "credly", "t-demo", "awarded", "created")
    why = run(seeded, "badges", "why", str(badge["id"]))
    assert why.returncode == 0
    assert "pass-demo" in why.stdout and "pass-other" in why.stdout
    why_json = json.loads(run(seeded, "badges", "why", badge["uuid"], "--json").stdout)
    fulfilled = {r["id"]: r["event_id"] for r in why_json["awarded"]["requirements"]}
    assert fulfilled == {"demo": "pass-demo", "other": "pass-other"}
    revoked = run(seeded, "badges", "list", "--status", "revoked", "--json")
    assert json.loads(revoked.stdout) == []


def test_progress_list_filters(seeded, tmp_path):
    path = write_lines(tmp_path, [json.dumps(course_event("ann", DEMO)),
                                  json.dumps(course_event("bob", OTHER))])
    run(seeded, "events", "ingest", str(path))
    rows = json.loads(run(seeded, "progress", "list", "--learner", "bob", "--json").stdout)
    assert [(r["username"], r["fulfilled"], r["fulfilled_groups"], r["total_groups"])
            for r in rows] == [("bob", ["other"], 1, 2)]
    by_template = json.loads(run(seeded, "progress", "list", "--template", "t-demo",
                                 "--json").stdout)
    assert {r["username"] for r in by_template} == {"ann", "bob"}


def test_template_activation_refused_without_requirements(seeded):
    result = run(seeded, "template", "activate", "t-empty")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "cannot be activated: it has no requirements" in result.stderr
    assert not Template.get(Template.external_id == "t-empty").is_active
    listed = json.loads(run(seeded, "template", "list", "--json").stdout)
    by_ext = {t["external_id"]: t for t in listed}
    assert by_ext["t-demo"]["active"] and by_ext["t-demo"]["requirements"] == 2
    off = run(seeded, "template", "deactivate", "t-demo")
    assert off.returncode == 0 and "inactive" in off.stdout
    assert not Template.get(Template.external_id == "t-demo").is_active


def test_config_import_with_problems_lists_each_and_changes_nothing(seeded, tmp_path):
    before = (Requirement.select().count(), DataRule.select().count())
    bad = {
        "version": 1,
        "templates": [
            template_config("t-missing", DEMO_REQS),
            template_config("t-empty", [], active=True),
            template_config("t-demo", [
                requirement("demo", rule("is_passing", "true"),
                            event_type="org.openedx.learning.nope.v1"),
            ], [penalty(["zzz"], rule("is_passing", "false"))]),
        ],
    }
    # a penalty pointing at another template's requirement
    bad["templates"].append(template_config("t-empty", [requirement("mine")], [
        penalty(["demo"], rule("is_passing", "false"))], active=False))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = run(seeded, "config", "import", str(path))
    assert result.returncode == 1
    text = result.stderr
    assert "nothing changed" in text
    assert "t-missing" in text and "unknown template" in text
    assert "cannot be activated: it has no requirements" in text
    assert "unknown event type org.openedx.learning.nope.v1" in text
    assert "unknown requirement 'zzz'" in text
    assert "listed twice" in text
    assert (Requirement.select().count(), DataRule.select().count()) == before


def test_config_import_penalty_on_other_templates_requirement(seeded, tmp_path):
    cfg = config_text(
        template_config("t-demo", DEMO_REQS),
        template_config("t-empty", [requirement("mine", rule("is_passing", "true"))],
                        [penalty(["other"], rule("is_passing", "false"))], active=False),
    )
    path = tmp_path / "cfg.json"
    path.write_text(cfg)
    result = run(seeded, "config", "import", str(path))
    assert result.returncode == 1
    assert "names requirement 'other' of another template (credly:t-demo)" in result.stderr
    assert not Requirement.select().where(Requirement.key == "mine").exists()


def test_config_not_json_and_wrong_shape(seeded, tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text("{not json")
    result = run(seeded, "config", "import", str(path))
    assert result.returncode == 1 and "not JSON" in result.stderr
    path.write_text(json.dumps({"version": 3, "templates": "x"}))
    result = run(seeded, "config", "import", str(path))
    assert result.returncode == 1
    assert "version" in result.stderr and "templates" in result.stderr


def test_config_export_import_roundtrip_and_dry_run(seeded, tmp_path):
    exported = run(seeded, "config", "export").stdout
    out = tmp_path / "exported.json"
    assert run(seeded, "config", "export", "-o", str(out)).returncode == 0
    assert out.read_text() == exported
    assert run(seeded, "config", "import", str(out)).stdout.strip() == "no changes"
    assert run(seeded, "config", "export").stdout == exported
    doc = json.loads(exported)
    doc["templates"][0]["active"] = False
    out.write_text(json.dumps(doc))
    dry = run(seeded, "config", "import", str(out), "--dry-run")
    assert dry.returncode == 0 and "deactivate" in dry.stdout
    assert Template.get(Template.external_id == "t-demo").is_active


def test_config_lint_exit_code(seeded, tmp_path):
    ok = run(seeded, "config", "lint")
    assert ok.returncode == 0
    bad = config_text(template_config("t-demo", [
        requirement("demo", rule("is_passing", "maybe"), rule("course.nope", "x")),
    ], [penalty(["demo"])], active=False))
    path = tmp_path / "lint.json"
    path.write_text(bad)
    result = run(seeded, "config", "lint", str(path), "--json")
    assert result.returncode == 1
    findings = json.loads(result.stdout)
    messages = " | ".join(f["message"] for f in findings)
    assert "is a boolean" in messages
    assert "'course.nope'" in messages
    assert "no rules" in messages


def test_events_list_outcome_filter(seeded, tmp_path):
    path = write_lines(tmp_path, ["oops", json.dumps(course_event("ann", DEMO))])
    run(seeded, "events", "ingest", str(path))
    rows = json.loads(run(seeded, "events", "list", "--outcome", "rejected", "--json").stdout)
    assert [(r["line"], r["outcome"]) for r in rows] == [(1, "rejected")]
    rows = json.loads(run(seeded, "events", "list", "--learner", "ann", "--json").stdout)
    assert [r["outcome"] for r in rows] == ["processed"]


def test_secrets_never_printed(seeded):
    result = run(seeded, "provider", "list", "--json")
    assert "test-key-1234" not in result.stdout
    assert json.loads(result.stdout)[0]["api_key"] == "…1234"


def test_ingest_survives_unstorable_values_and_quotes_huge_ones_short(seeded, tmp_path):
    """Issue 11's three aborting inputs: a 10^100 user id, a lone surrogate in a username (with
    and without an event id), a 10 MB time. Each is one rejected line; the rest is processed."""
    def event(n: int, **change: object) -> dict:
        body = course_event(f"u{n}", DEMO, event_id=f"e{n}")
        user = body["data"]["course_passing_status"]["user"]
        user.update(change.pop("user", {}))
        user["pii"].update(change.pop("pii", {}))
        body.update(change)
        return body

    no_id = event(5, pii={"username": "x\ud800"})
    del no_id["id"]
    lines = [event(1), event(2, user={"id": 10**100}), event(3),
             event(4, pii={"username": "\ud800"}), no_id,
             event(6, time="x" * 10_000_000), event(7)]
    path = write_lines(tmp_path, [json.dumps(e) for e in lines])
    result = run(seeded, "events", "ingest", str(path), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads(result.stdout)
    assert (counts["processed"], counts["rejected"]) == (3, 4)
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4 and all(len(e) < 400 for e in errors)
    assert ":2: rejected: data.course_passing_status.user.id is an integer beyond 64 bits" \
        in errors[0]
    assert ":4: rejected: " in errors[1] and "lone surrogate" in errors[1]
    assert ":5: rejected: " in errors[2] and "lone surrogate" in errors[2]
    assert ":6: rejected: time 'xxx" in errors[3] and "(10,000,000 characters)" in errors[3]
    outcomes = [(r.line, r.outcome) for r in IntakeRecord.select().order_by(IntakeRecord.id)]
    assert outcomes == [(1, "processed"), (2, "rejected"), (3, "processed"), (4, "rejected"),
                        (5, "rejected"), (6, "rejected"), (7, "processed")]
