"""Operator awards (issue 13, item 3): one by hand and many from a CSV file, validated row by
row, previewed, resumable, delivered through the same queue, recorded in the badge's why."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from badgetui.cli import main
from badgetui.domain.events import BADGE_AWARDED
from badgetui.services import awards as awards_module
from badgetui.services.awards import AwardRow, read_award_file
from badgetui.services.common import ServiceError
from badgetui.services.queries import why, why_lines
from badgetui.store.models import (
    AuditLog,
    Badge,
    DeliveryJob,
    Learner,
    OutgoingEvent,
    Progress,
    Template,
)
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config
from tests.test_delivery import TPL, configure, emu_badges


@pytest.fixture
def tpl(services, synced) -> Template:
    synced("t1", "t2")
    services.config.import_text(config_text(template_config("t1", [
        requirement("r1", rule("course.course_key", DEMO))])))
    return Template.get(Template.external_id == "t1")


def test_a_single_award_by_hand(services, tpl, clock):
    services.intake.ingest_lines(jsonl(course_event("ann", "course-v1:x+y+z")), "t")
    outcome = services.awards.award(AwardRow("ann", "t1", evidence="https://ex.org/work/1"),
                                    "helped run the course")
    badge = Badge.get_by_id(outcome.badge_id)
    assert (badge.learner.username, badge.status, badge.provider_state) == (
        "ann", "awarded", "created")
    assert DeliveryJob.get(DeliveryJob.badge == badge.id).kind == "issue"
    event = OutgoingEvent.get(OutgoingEvent.badge == badge.id)
    assert event.event_type == BADGE_AWARDED
    assert json.loads(event.payload)["user"]["pii"]["username"] == "ann"
    assert Progress.get((Progress.learner == badge.learner_id)
                        & (Progress.template == tpl.id)).badge_id == badge.id
    lines = why_lines(why(badge.id))
    assert lines[1].endswith("by operator (operator award): helped run the course")
    assert lines[2] == "  evidence: https://ex.org/work/1"
    assert AuditLog.get(AuditLog.action == "badge.award").actor == "operator"
    with pytest.raises(ServiceError, match=r"already holds it \(badge \d+\)"):
        services.awards.award(AwardRow("ann", "t1"), "again")
    with pytest.raises(ServiceError, match="unknown learner: give their email"):
        services.awards.award(AwardRow("zed", "t1"), "new")
    with pytest.raises(ServiceError, match="needs a reason"):
        services.awards.award(AwardRow("ann", "t2"), "  ")
    assert Badge.select().count() == 1


def test_expiry_from_the_row_or_the_template(services, tpl, clock):
    Template.update(expires_in_days=30).where(Template.id == tpl.id).execute()
    default = services.awards.award(AwardRow("ann", "t1", email="ann@example.org"), "x")
    assert Badge.get_by_id(default.badge_id).expires_at == (clock() + timedelta(days=30)
                                                            ).replace(tzinfo=None)
    given = services.awards.award(AwardRow("bob", str(tpl.id), email="bob@example.org",
                                           expiry="2030-01-31"), "x")
    assert str(Badge.get_by_id(given.badge_id).expires_at) == "2030-01-31 00:00:00"
    with pytest.raises(ServiceError, match="is not in the future"):
        services.awards.award(AwardRow("cat", "t1", email="c@example.org", expiry="2001-01-01"),
                              "x")
    with pytest.raises(ServiceError, match="is not a date"):
        services.awards.award(AwardRow("cat", "t1", email="c@example.org", expiry="soon"), "x")


CSV = """username,email,name,template,evidence,expiry
ann,ann@example.org,Ann Archer,t1,https://ex.org/ann,
bob,bob@example.org,Bob Baker,t1,,2031-06-30
,nobody@example.org,No Name,t1,,
cat,not-an-email,Cat,t1,,
dan,dan@example.org,Dan,nope,,
ann,ann@example.org,Ann Archer,t1,,
eve,eve@example.org,Eve,t2,,yesterday
fay,fay@example.org,Fay,t2,,,extra
gus,,Gus,t1,,
"""


def test_a_csv_file_is_validated_row_by_row(services, tpl, tmp_path, db_url, monkeypatch,
                                            capsys):
    services.close()
    path = tmp_path / "awards.csv"
    path.write_text(CSV)
    monkeypatch.setenv("BADGETUI_DB", db_url)
    assert main(["badges", "award-csv", str(path), "--reason", "spring cohort", "--dry-run",
                 "--json"]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert preview["counts"] == {"would award": 2, "rejected": 7}
    assert Badge.select().count() == 0 and Learner.select().count() == 0
    assert main(["badges", "award-csv", str(path), "--reason", "spring cohort",
                 "--no-deliver"]) == 0
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if ": rejected: " in line] == [
        f"{path}:4: rejected: no username",
        f"{path}:5: rejected: email 'not-an-email' is not an address",
        f"{path}:6: rejected: unknown template 'nope'",
        f"{path}:7: rejected: listed twice (first on line 2)",
        f"{path}:8: rejected: expiry 'yesterday' is not a date (YYYY-MM-DD or ISO 8601 time)",
        f"{path}:9: rejected: more cells than the header names",
        f"{path}:10: rejected: unknown learner: give their email to create them",
    ]
    assert "… 9 rows" in err
    assert out.strip().splitlines()[-1] == "awarded 2, rejected 7"
    held = {b.learner.username: b for b in Badge.select()}
    assert set(held) == {"ann", "bob"}
    assert str(held["bob"].expires_at) == "2031-06-30 00:00:00"
    assert held["ann"].learner.name == "Ann Archer"
    assert json.loads(held["ann"].evidence)["awarded"]["evidence"] == "https://ex.org/ann"
    assert DeliveryJob.select().count() == 2
    # the same file again: everything awarded is skipped, nothing twice
    assert main(["badges", "award-csv", str(path), "--reason", "spring cohort", "--json",
                 "--no-deliver"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["counts"] == {"skipped": 2, "rejected": 7}
    assert Badge.select().count() == 2


def test_a_killed_bulk_award_resumes(services, synced, monkeypatch):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("r1", rule("course.course_key", DEMO))])))
    monkeypatch.setattr(awards_module, "CHUNK", 3)
    rows = "username,email,template\n" + "".join(
        f"l{n},l{n}@example.org,t1\n" for n in range(10))

    def kill(done: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        services.awards.award_file(read_award_file(rows), "r", source="f", on_progress=kill)
    assert Badge.select().count() == 6  # two whole chunks committed, nothing half-done
    report = services.awards.award_file(read_award_file(rows), "r", source="f")
    assert report.counts == {"skipped": 6, "awarded": 4}
    assert Badge.select().count() == 10 == DeliveryJob.select().count()
    assert len({b.learner_id for b in Badge.select()}) == 10


def test_header_problems_are_one_line():
    with pytest.raises(ServiceError, match="the file is empty"):
        list(read_award_file(""))
    with pytest.raises(ServiceError, match="unknown: colour; missing: template"):
        list(read_award_file("username,colour\nann,red\n"))


async def test_bulk_awards_reach_the_provider_once(fast, emulator, clock):
    await configure(fast)
    rows = "username,email,name,template\n" + "".join(
        f"p{n},p{n}@example.org,P {n},{TPL}\n" for n in range(25))
    report = fast.awards.award_file(read_award_file(rows), "imported", source="f")
    assert report.counts["awarded"] == 25
    delivered = await fast.delivery.run()
    assert delivered.counts["issued"] == 25
    remote = emu_badges(emulator)
    assert sorted(b["recipient_email"] for b in remote) == sorted(
        f"p{n}@example.org" for n in range(25))
    assert {b.provider_state for b in Badge.select()} == {"pending"}
    again = fast.awards.award_file(read_award_file(rows), "imported", source="f")
    assert again.counts == {"skipped": 25}
    assert (await fast.delivery.run()).counts["issued"] == 0
    assert len(emu_badges(emulator)) == 25
