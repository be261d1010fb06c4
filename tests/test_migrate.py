"""`badgetui migrate credentials` (issue 12): a running Open edX Credentials site's badges
database imported in one command, from MariaDB and from SQLite, into SQLite and PostgreSQL.

The source databases are built here (tests/credentials_db.py) in Credentials' own schema with
the Open edX documentation's configuration examples, and with the states Credentials' known
defects leave behind: an early award, a revoked credential never awarded, a rule-less
requirement, ungrouped requirements, a revoke that never reached Credly, an issue that never
did, an Accredible group that took a Credly template's id.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from badgetui.cli import main
from badgetui.services.migrate import MigrationOptions
from badgetui.store.models import (
    AuditLog,
    Badge,
    DeliveryJob,
    Fulfillment,
    Learner,
    Progress,
    ProviderAccount,
    Requirement,
    Template,
)
from tests.conftest import CREDLY_ORG, credly_templates
from tests.credentials_db import (
    CCX_PASSING,
    CredentialsDB,
    mysql_credentials,
    sqlite_credentials,
)
from tests.helpers import DEMO, OTHER, course_event, jsonl
from tests.test_delivery import emu_badges
from tests.test_lookups import issue_elsewhere

CREDLY_KEY = "sandbox-credly-key"  # the emulator's key for CREDLY_ORG
ACCREDIBLE_KEY = "sandbox-accredible-key"
T1, T2, T3, T4 = (t["id"] for t in credly_templates(4))
GROUP = 9001
REMOTE_ANN = "5a1e0000-0000-4000-8000-0000000000a1"
REMOTE_DAN = "5a1e0000-0000-4000-8000-0000000000d1"
_databases = itertools.count(1)


@dataclass(slots=True)
class Site:
    db: CredentialsDB
    ids: dict[str, int]
    uuids: dict[str, str]

    @property
    def url(self) -> str:
        return self.db.url


def build_site(db: CredentialsDB) -> Site:
    """The documentation's examples on one Credentials site, with learners in every state."""
    ids: dict[str, int] = {}
    uuids: dict[str, str] = {}
    site = db.site()
    org = db.organization(CREDLY_ORG, "Example Academy", CREDLY_KEY)
    cfg = db.accredible_config("Example Accredible", ACCREDIBLE_KEY)
    # MULTIPLE SPECIFIC COURSES: groups A and B; a penalty on failing the Demo course.
    t1 = ids["t1"] = db.credly_template(site, org, T1, "Multiple courses")
    a = ids["t1a"] = db.requirement(t1, "A", description='On the "Demo" course completion.')
    db.rule(a, "is_passing", "true")
    db.rule(a, "course.course_key", DEMO)
    b = ids["t1b"] = db.requirement(t1, "B", description='On the "Other" course completion.')
    db.rule(b, "is_passing", "true")
    db.rule(b, "course.course_key", OTHER)
    pen = ids["pen"] = db.penalty(t1, [a])
    db.penalty_rule(pen, "is_passing", "false")
    db.penalty_rule(pen, "course.course_key", DEMO)
    # ANY COURSE GRADE update: no data rule (never matches in Credentials' code).
    t2 = ids["t2"] = db.credly_template(site, org, T2, "Any grade update")
    ids["t2a"] = db.requirement(t2, "A", description="On any grade update.")
    # Two ungrouped requirements (Credentials' code ORs them; the docs say both are needed).
    t3 = ids["t3"] = db.credly_template(site, org, T3, "Demo and CCX", active=False,
                                        state="draft")
    c = db.requirement(t3, None)
    db.rule(c, "course.course_key", DEMO)
    d = db.requirement(t3, None, event_type=CCX_PASSING)
    db.rule(d, "course.master_course_key", DEMO)
    # An Accredible group (its Credentials id is the group id): CCX completion.
    g = ids["g"] = db.accredible_group(site, cfg, GROUP, "Group 1")
    ga = db.requirement(g, "A", event_type=CCX_PASSING)
    db.rule(ga, "is_passing", "true")
    db.rule(ga, "course.master_course_key", DEMO)

    db.user("ann", first="Ann", last="Archer", lms_id=11)
    db.user("bob", full="Bob Baker", lms_id=12)
    db.user("cat", lms_id=13)
    db.user("dan", lms_id=14)
    db.user("eve", first="Eve", last="Evans", lms_id=15)
    db.user("fay", lms_id=16)
    db.user("gus", lms_id=17)
    db.user("nobody-with-badges", lms_id=99)  # not in the badge tables: not imported
    # ann completed T1 and holds it at Credly
    db.progress("ann", t1, [(a, "A"), (b, "B")])
    uuids["ann"] = db.credly_badge("ann", t1, external=REMOTE_ANN)
    # bob: one group of two, awarded anyway (Credentials' early award)
    db.progress("bob", t1, [(a, "A")])
    uuids["bob"] = db.credly_badge("bob", t1, external=str(uuid.uuid4()))
    # cat: a penalty on partial progress made a revoked credential she never held
    db.progress("cat", t1, [(b, "B")])
    uuids["cat"] = db.credly_badge("cat", t1, status="revoked", state="created")
    # dan: revoked in Credentials, the revoke never reached Credly
    db.progress("dan", t1, [])
    uuids["dan"] = db.credly_badge("dan", t1, status="revoked", external=REMOTE_DAN)
    # eve: awarded, Credly's answer never came (the badge is there, without an earner id)
    db.progress("eve", t1, [(a, "A"), (b, "B")])
    uuids["eve"] = db.credly_badge("eve", t1, state="no_response")
    # fay: rule-less requirement fulfilled (as Credentials' admin could record it)
    db.progress("fay", t2, [(ids["t2a"], "A")])
    # gus: an Accredible credential
    db.progress("gus", g, [(ga, "A")])
    uuids["gus"] = db.accredible_badge("gus", g, external=5001)
    # hal: progress, no user row
    db.progress("hal", t1, [(a, "A")])
    return Site(db, ids, uuids)


@pytest.fixture(params=["sqlite", "mariadb"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    if request.param == "sqlite":
        with sqlite_credentials(tmp_path / "credentials.sqlite3") as db:
            yield build_site(db)
    else:
        with mysql_credentials(f"credentials_t{next(_databases)}_{uuid.uuid4().hex[:8]}") as db:
            yield build_site(db)


def migrate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db_url: str,
            *args: str) -> tuple[int, Any, str]:
    monkeypatch.setenv("BADGETUI_DB", db_url)
    rc = main(["migrate", "credentials", *args])
    out, err = capsys.readouterr()
    data = json.loads(out) if "--json" in args and rc == 0 else out
    return rc, data, err


def findings(report: dict[str, Any]) -> dict[str, list[str]]:
    return {f["code"]: f["items"] for f in report["findings"]}


def badge_of(username: str) -> Badge:
    return Badge.select().join(Learner).where(Learner.username == username).get()


def test_migrates_a_credentials_site(services, source, db_url, monkeypatch, capsys):
    before = source.db.checksum()
    services.close()
    rc, report, err = migrate(monkeypatch, capsys, db_url, "--from", source.url, "--json")
    assert rc == 0, err
    assert source.db.checksum() == before  # read-only
    # accounts, keys masked in the output and kept whole in the database
    assert [(a["provider"], a["identifier"], a["api_key"]) for a in report["accounts"]] == [
        ("credly", CREDLY_ORG, "…" + CREDLY_KEY[-4:]),
        ("accredible", "Example Accredible", "…" + ACCREDIBLE_KEY[-4:])]
    assert CREDLY_KEY not in json.dumps(report) and ACCREDIBLE_KEY not in json.dumps(report)
    assert {(a.provider, a.api_key) for a in ProviderAccount.select()} == {
        ("credly", CREDLY_KEY), ("accredible", ACCREDIBLE_KEY)}
    # templates by provider id under their account, with name, state and activation
    rows = {t.external_id: t for t in Template.select()}
    assert set(rows) == {T1, T2, T3, str(GROUP)}
    assert [(rows[k].name, rows[k].state, rows[k].is_active) for k in (T1, T2, T3)] == [
        ("Multiple courses", "active", True), ("Any grade update", "active", True),
        ("Demo and CCX", "draft", False)]
    assert rows[str(GROUP)].provider == "accredible" and rows[str(GROUP)].is_active
    assert rows[str(GROUP)].account.identifier == "Example Accredible"
    # configuration as code: what `config export` shows
    assert main(["config", "export"]) == 0
    exported = {(t["provider"], t["external_id"]): t for t in
                json.loads(capsys.readouterr().out)["templates"]}
    t1 = exported[("credly", T1)]
    assert [(r["group"], r["description"], [(x["path"], x["op"], x["value"]) for x in r["rules"]])
            for r in t1["requirements"]] == [
        ("A", 'On the "Demo" course completion.', [("is_passing", "eq", "true"),
                                                   ("course.course_key", "eq", DEMO)]),
        ("B", 'On the "Other" course completion.', [("is_passing", "eq", "true"),
                                                    ("course.course_key", "eq", OTHER)])]
    (penalty,) = t1["penalties"]
    assert penalty["requirements"] == [t1["requirements"][0]["id"]]
    assert [(x["path"], x["value"]) for x in penalty["rules"]] == [
        ("is_passing", "false"), ("course.course_key", DEMO)]
    t3 = exported[("credly", T3)]
    assert [r["group"] for r in t3["requirements"]] == ["A", "B"]  # each required, as documented
    assert exported[("accredible", str(GROUP))]["requirements"][0]["event_type"] == CCX_PASSING
    # learners from core_user; only those the badge tables name
    learners = {r.username: r for r in Learner.select()}
    assert set(learners) == {"ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal"}
    assert (learners["ann"].name, learners["ann"].email, learners["ann"].lms_id) == (
        "Ann Archer", "ann@example.org", 11)
    assert learners["bob"].name == "Bob Baker" and learners["hal"].email == ""
    # progress with fulfillments and group counts
    progress = {(p.learner.username, p.template.external_id): p for p in Progress.select()}
    assert (progress[("ann", T1)].fulfilled_groups, progress[("ann", T1)].complete) == (2, True)
    assert (progress[("bob", T1)].fulfilled_groups, progress[("bob", T1)].complete) == (1, False)
    assert progress[("fay", T2)].complete and progress[("gus", str(GROUP))].complete
    assert Fulfillment.select().count() == 9
    # badges: UserCredential UUIDs, provider state and id, and the delivery each needs
    ann, bob, dan, eve, gus = (badge_of(u) for u in ("ann", "bob", "dan", "eve", "gus"))
    assert (ann.uuid, ann.status, ann.provider_state, ann.external_id) == (
        source.uuids["ann"], "awarded", "accepted", REMOTE_ANN)
    assert progress[("ann", T1)].badge_id == ann.id
    assert (bob.status, bob.provider_state) == ("awarded", "accepted")  # kept by default
    assert (dan.status, dan.external_id) == ("revoked", REMOTE_DAN)
    assert (eve.status, eve.provider_state, eve.external_id) == ("awarded", "error", None)
    assert (gus.provider_state, gus.external_id, gus.template.provider) == (
        "accepted", "5001", "accredible")
    assert not Badge.select().join(Learner).where(Learner.username == "cat").exists()
    jobs = {(j.badge.learner.username, j.kind, j.attempts) for j in DeliveryJob.select()}
    assert jobs == {("dan", "revoke", 0), ("eve", "issue", 1)}  # eve: looked up first
    # the why of a migrated badge
    assert main(["badges", "why", str(ann.id)]) == 0
    why = capsys.readouterr().out
    assert "credentials:usercredential:" in why and "is_passing eq 'true'" in why
    # the findings, each with its choice
    found = findings(report)
    assert found["early-award"] == [f"bob on template {source.ids['t1']} (Multiple courses): "
                                    "1 of 2 groups"]
    assert found["revoked-never-awarded"] == [f"cat on template {source.ids['t1']} "
                                              "(Multiple courses)"]
    assert [i.split(":")[0] for i in found["rule-less"]] == [
        f"template {source.ids['t2']} (Any grade update) [active]"]
    assert len(found["ungrouped"]) == 1 and found["revoked-still-live"][0].startswith("dan ")
    assert found["not-delivered"][0].startswith("eve ") and found["no-user"] == ["hal"]
    assert "id-collision" not in found
    assert report["created"]["badges awarded"] == 4 and report["created"]["badges revoked"] == 1
    assert AuditLog.select().where(AuditLog.action == "migrate.credentials").count() == 1


def test_a_second_run_changes_nothing(services, source, db_url, monkeypatch, capsys):
    services.close()
    assert migrate(monkeypatch, capsys, db_url, "--from", source.url)[0] == 0
    counts = [m.select().count() for m in (ProviderAccount, Template, Requirement, Learner,
                                           Progress, Fulfillment, Badge, DeliveryJob, AuditLog)]
    rc, report, err = migrate(monkeypatch, capsys, db_url, "--from", source.url, "--json")
    assert rc == 0, err
    assert report["changed"] is False and report["created"] == {} and report["jobs"] == {}
    assert report["config_changes"] == []
    assert report["unchanged"]["badges"] == 5 and report["unchanged"]["templates"] == 4
    assert counts == [m.select().count() for m in (
        ProviderAccount, Template, Requirement, Learner, Progress, Fulfillment, Badge,
        DeliveryJob, AuditLog)]
    rc, text, _ = migrate(monkeypatch, capsys, db_url, "--from", source.url)
    assert "nothing to change: everything is already here" in text


def test_a_dry_run_shows_the_plan_and_writes_nothing(services, source, db_url, monkeypatch,
                                                     capsys):
    services.close()
    rc, text, err = migrate(monkeypatch, capsys, db_url, "--from", source.url, "--dry-run")
    assert rc == 0, err
    assert "plan (dry run: nothing written)" in text
    assert "templates     4 (3 active): 4 new" in text
    assert "early-award (1)" in text and "-> kept (--revoke-early-awards revokes them)" in text
    assert CREDLY_KEY not in text and "…" + CREDLY_KEY[-4:] in text
    assert [m.select().count() for m in (ProviderAccount, Template, Learner, Badge,
                                         DeliveryJob, AuditLog)] == [0] * 6
    _, dry, _ = migrate(monkeypatch, capsys, db_url, "--from", source.url, "--dry-run",
                        "--json")
    _, done, _ = migrate(monkeypatch, capsys, db_url, "--from", source.url, "--json")
    assert (dry["created"], dry["jobs"], dry["findings"]) == (
        done["created"], done["jobs"], done["findings"])


def test_the_operator_chooses_per_finding(services, source, db_url, clock):
    options = MigrationOptions(keep_early_awards=False, keep_unawarded_revocations=True,
                               rule_less="inactive")
    report = services.migrate.migrate_credentials(source.url, options).as_dict()
    bob = badge_of("bob")
    assert bob.status == "revoked" and "before every requirement group" in bob.revoke_reason
    assert DeliveryJob.select().where((DeliveryJob.badge == bob.id)
                                      & (DeliveryJob.kind == "revoke")).exists()
    cat = badge_of("cat")
    assert (cat.status, cat.provider_state) == ("revoked", "cancelled")
    assert not DeliveryJob.select().where(DeliveryJob.badge == cat.id).exists()
    assert Template.get(Template.external_id == T2).is_active is False
    assert Template.get(Template.external_id == T1).is_active is True
    choices = {f["code"]: f["choice"] for f in report["findings"]}
    assert choices["early-award"].startswith("revoked")
    assert choices["rule-less"].startswith("templates imported inactive")


def test_imported_config_goes_on_processing_events(services, source):
    services.migrate.migrate_credentials(source.url, MigrationOptions())
    report = services.intake.ingest_lines(jsonl(
        course_event("ivy", DEMO), course_event("ivy", OTHER),
        course_event("ann", DEMO, passing=False)), "after-migration")
    # ivy on T1 and on T2 (any grade update, as documented), ann on T2 with her failing grade
    assert report.awarded == 3
    assert {b.template.external_id for b in Badge.select().join(Learner).where(
        Learner.username == "ivy")} == {T1, T2}
    assert badge_of("ann").status == "revoked"  # the migrated penalty works


async def test_delivery_adopts_what_credentials_issued(fast, emulator, source):
    """eve's badge reached Credly without an earner id (Credentials never sends one) and
    Credentials recorded no answer: delivery finds it by email and template and adopts it."""
    existing = await issue_elsewhere(emulator, "eve", earner=None)
    fast.migrate.migrate_credentials(source.url, MigrationOptions())
    report = await fast.delivery.run()
    assert report.counts["adopted"] == 1 and report.counts["issued"] == 0
    eve = badge_of("eve")
    assert (eve.external_id, eve.last_error) == (existing, "")
    mine = [b for b in emu_badges(emulator) if b["recipient_email"] == "eve@example.org"]
    assert [b["id"] for b in mine] == [existing]  # not issued twice


def test_collided_accredible_group_is_reported(services, tmp_path):
    with sqlite_credentials(tmp_path / "collided.sqlite3") as db:
        site = db.site()
        org = db.organization(CREDLY_ORG, "Example Academy", CREDLY_KEY)
        cfg = db.accredible_config(None, ACCREDIBLE_KEY)
        tid = db.credly_template(site, org, T4, "Overwritten")
        # What Credentials' Accredible sync does when group `tid` arrives: the parent row is
        # updated in place and an accrediblegroup child added beside the Credly one.
        db.execute(f"UPDATE badges_badgetemplate SET origin = 'accredible', name = 'Group 7' "
                   f"WHERE id = {tid}")
        db.execute(f"INSERT INTO badges_accrediblegroup VALUES ({tid}, {cfg})")
        report = services.migrate.migrate_credentials(db.url, MigrationOptions()).as_dict()
    (item,) = findings(report)["id-collision"]
    assert item == (f"template id {tid} (Group 7) is both a Credly template and Accredible "
                    f"group {tid}")
    (tpl,) = Template.select()
    assert (tpl.provider, tpl.external_id, tpl.account.identifier) == (
        "accredible", str(tid), f"accredible-{cfg}")


def test_bad_sources_are_one_line(services, db_url, tmp_path, monkeypatch, capsys):
    services.close()
    plain = tmp_path / "plain.sqlite3"
    import sqlite3

    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()
    cases = {
        f"sqlite:///{plain}": "is not an Open edX Credentials database with the badges app",
        f"sqlite:///{tmp_path}/missing.db": "no such file",
        "mysql://root@127.0.0.1:3306/no_such_credentials_db": "Unknown database",
        "mysql://nobody:s3cret-pw@127.0.0.1:3306/x": "Access denied",
        "postgresql://x/y": "unsupported source",
    }
    for url, reason in cases.items():
        rc, _, err = migrate(monkeypatch, capsys, db_url, "--from", url)
        assert rc == 1 and len(err.strip().splitlines()) == 1, err
        assert reason in err and "s3cret-pw" not in err and "Traceback" not in err, err


def test_several_sites_need_a_choice(services, tmp_path):
    with sqlite_credentials(tmp_path / "sites.sqlite3") as db:
        one, two = db.site("one.example.org"), db.site("two.example.org")
        org = db.organization(CREDLY_ORG, "Example Academy", CREDLY_KEY)
        db.credly_template(one, org, T1, "First")
        db.credly_template(two, org, T2, "Second")
        with pytest.raises(Exception, match=r"several sites \(1 \(one.example.org\), 2 "
                                            r"\(two.example.org\)\): choose one with --site"):
            services.migrate.migrate_credentials(db.url, MigrationOptions())
        services.migrate.migrate_credentials(db.url, MigrationOptions(site=two))
    assert [t.external_id for t in Template.select()] == [T2]


@pytest.fixture
def bus() -> Iterator[tuple[Any, str]]:
    from tests.bus_helpers import redis_or_skip

    client = redis_or_skip()
    name = f"badgetui-test-{uuid.uuid4().hex[:12]}"
    yield client, name
    client.delete(name, f"{name}-badgetui-dlq")
    client.close()


def test_the_consumer_takes_over_where_credentials_group_stands(services, source, bus):
    """Cut-over: Credentials' group read four entries and acknowledged three; badgetui's group
    starts just before the unacknowledged one: nothing missed, nothing acknowledged repeated."""
    from badgetui.store.models import IntakeRecord
    from tests.bus_helpers import consume, produce

    rds, stream = bus
    services.migrate.migrate_credentials(source.url, MigrationOptions())
    events = [course_event(f"cut{n}", DEMO, event_id=f"cut-{n}") for n in range(1, 7)]
    ids = produce(rds, stream, *events)
    rds.xgroup_create(stream, "credentials", id="0")
    read = rds.xreadgroup("credentials", "credentials-worker", {stream: ">"}, count=4)
    assert len(read[0][1]) == 4
    rds.xack(stream, "credentials", *ids[:3])
    stats = consume(services, stream, client=rds, start="group:credentials")
    assert stats.acked == 3
    assert sorted(r.event_id for r in IntakeRecord.select().where(
        IntakeRecord.event_id.startswith("cut-"))) == ["cut-4", "cut-5", "cut-6"]
    with pytest.raises(ValueError, match="has no consumer group nope"):
        consume(services, stream, client=rds, start="group:nope", group="badgetui-2")


def test_a_configuration_badgetui_refuses_is_a_finding_not_an_abort(services, tmp_path):
    """An event type outside BADGETUI_EVENTS and an operator badgetui lacks: those templates
    come in inactive without requirements, named with the reason; the rest is migrated."""
    with sqlite_credentials(tmp_path / "refused.sqlite3") as db:
        site = db.site()
        org = db.organization(CREDLY_ORG, "Example Academy", CREDLY_KEY)
        good = db.credly_template(site, org, T1, "Good")
        db.rule(db.requirement(good, "A"), "is_passing", "true")
        odd_type = db.credly_template(site, org, T2, "Unknown type")
        db.rule(db.requirement(odd_type, "A", event_type="org.example.nothing.v1"), "x", "1")
        odd_op = db.credly_template(site, org, T3, "Odd operator")
        db.rule(db.requirement(odd_op, "A"), "course.course_key", "^course", operator="regex")
        report = services.migrate.migrate_credentials(db.url, MigrationOptions()).as_dict()
    found = findings(report)
    assert found["config-skipped"][0].startswith(f"template {odd_op} (Odd operator): ")
    assert "regex" in found["config-skipped"][0]
    (refused,) = found["config-refused"]
    assert refused.startswith(f"template {odd_type} (Unknown type): ")
    assert "unknown event type org.example.nothing.v1" in refused
    active = {t.external_id: (t.is_active, t.requirements.count()) for t in Template.select()}
    assert active == {T1: (True, 1), T2: (False, 0), T3: (False, 0)}
