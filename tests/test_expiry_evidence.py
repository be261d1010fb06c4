"""Expiry and evidence (issue 13, item 5): a template's default lifetime and a per-award
expiry, sent to Credly as `expires_at` and to Accredible as `expired_on`; evidence built from
the why record (each requirement's rules and fulfilling event, and an operator's evidence),
sent as Credly `evidence[]` and Accredible `evidence_items`; `badges expiring`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from badgetui.cli import main
from badgetui.services.awards import AwardRow
from badgetui.store.models import Badge, Template
from tests.helpers import DEMO, course_event, jsonl
from tests.test_delivery import TPL, configure, emu_badges

GROUP = 9001


async def test_a_templates_lifetime_and_the_why_reach_credly(fast, emulator, clock):
    await configure(fast)
    tpl = fast.templates.set_expiry(TPL, 365)
    assert (tpl.expires_in_days, tpl.reaward_on_expiry) == (365, False)
    fast.intake.ingest_lines(jsonl(course_event("ann", DEMO, event_id="evt-ann-1")), "t")
    badge = Badge.get()
    assert badge.expires_at == badge.awarded_at + timedelta(days=365)
    assert (await fast.delivery.run()).counts["issued"] == 1
    (remote,) = emu_badges(emulator)
    assert remote["expires_at"] == badge.expires_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    (item,) = remote["evidence"]
    assert item["type"] == "IdEvidence" and item["id"] == "evt-ann-1"
    assert item["title"] == "Requirement demo"
    assert item["description"].startswith(
        f"is_passing eq 'true' and course.course_key eq '{DEMO}': fulfilled by event evt-ann-1")


async def test_an_operator_award_sends_its_expiry_and_evidence(fast, emulator, clock):
    await configure(fast)
    fast.awards.award(AwardRow("bob", TPL, email="bob@example.org", name="Bob Baker",
                               evidence="https://portfolio.example.org/bob",
                               expiry="2031-03-31"), "capstone reviewed by hand")
    fast.awards.award(AwardRow("cat", TPL, email="cat@example.org",
                               evidence="Presented the final project on 2026-11-30"), "talk")
    assert (await fast.delivery.run()).counts["issued"] == 2
    remote = {b["recipient_email"]: b for b in emu_badges(emulator)}
    bob, cat = remote["bob@example.org"], remote["cat@example.org"]
    assert bob["expires_at"] == "2031-03-31T00:00:00.000Z"
    assert bob["evidence"] == [{"type": "UrlEvidence", "name": "Evidence",
                                "value": "https://portfolio.example.org/bob",
                                "description": "capstone reviewed by hand"}]
    assert cat["expires_at"] is None  # the template's own default applies at Credly
    assert cat["evidence"][0]["description"] == "Presented the final project on 2026-11-30"


async def test_accredible_gets_expired_on_and_evidence_items(fast, emulator, clock):
    await configure(fast, provider="accredible", external_id=str(GROUP))
    group = Template.get(Template.external_id == str(GROUP))
    fast.templates.set_expiry(group.id, 30)
    fast.intake.ingest_lines(jsonl(course_event("dan", DEMO, event_id="evt-dan")), "t")
    assert (await fast.delivery.run()).counts["issued"] == 1
    (cred,) = [c for c in emulator.state()["accredible"]["credentials"]
               if c["recipient"]["email"] == "dan@example.org"]
    badge = Badge.get()
    assert cred["expired_on"] == badge.expires_at.date().isoformat()
    (item,) = cred["evidence_items"]
    assert item["description"].startswith("Requirement demo: is_passing eq 'true'")
    assert "fulfilled by event evt-dan" in item["description"]


def test_badges_expiring_lists_what_expires_soon(services, synced, clock, db_url, monkeypatch,
                                                 capsys):
    synced("t1")
    now = max(clock(), datetime.now(UTC))  # the CLI below reads the wall clock
    services.awards.award(AwardRow("soon", "t1", email="s@example.org",
                                   expiry=(now + timedelta(days=10)).isoformat()), "x")
    services.awards.award(AwardRow("later", "t1", email="l@example.org",
                                   expiry=(now + timedelta(days=90)).isoformat()), "x")
    services.awards.award(AwardRow("never", "t1", email="n@example.org"), "x")
    services.close()
    monkeypatch.setenv("BADGETUI_DB", db_url)
    assert main(["badges", "expiring", "--days", "30", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["username"] for r in rows] == ["soon"]
    assert main(["badges", "expiring", "--days", "365", "--json"]) == 0
    assert [r["username"] for r in json.loads(capsys.readouterr().out)] == ["soon", "later"]
    assert main(["badges", "list", "--expiring-within", "30", "--json"]) == 0
    assert [r["username"] for r in json.loads(capsys.readouterr().out)] == ["soon"]
    assert main(["badges", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["template", "expiry", "t1", "--days", "90", "--reaward"]) == 0
    assert "awards expire after 90 days; expired awards are awarded again" in \
        capsys.readouterr().out
    assert main(["badges", "expiring", "--days", "1"]) == 0
    assert "no held badge expires within 1 days" in capsys.readouterr().out
