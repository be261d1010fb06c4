"""The store: real constraints, SQLite settings and migrations, on real databases (SQLite files,
and PostgreSQL schemas when BADGETUI_TEST_POSTGRES is set)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from peewee import IntegrityError
from playhouse.schema_diff import diff_models

from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.store.database import (
    HISTORY_TABLE,
    SchemaError,
    make_database,
    migrate,
    migration_names,
    open_database,
    schema_version,
)
from badgetui.store.models import (
    MODELS,
    Badge,
    DataRule,
    Fulfillment,
    IntakeRecord,
    Learner,
    Progress,
    ProviderAccount,
    Requirement,
    Template,
)
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config

T = datetime(2026, 11, 1, 12, 0)


def account(provider: str = "credly", identifier: str = "org-1") -> ProviderAccount:
    return ProviderAccount.create(provider=provider, identifier=identifier, name=identifier,
                                  api_key="key-0000", created_at=T)


def template(acct: ProviderAccount, external_id: str = "tpl-1") -> Template:
    return Template.create(account=acct, provider=acct.provider, external_id=external_id,
                           created_at=T, updated_at=T)


def learner(username: str = "ann") -> Learner:
    return Learner.create(username=username, updated_at=T)


def badge(lrn: Learner, tpl: Template, status: str, n: int) -> Badge:
    return Badge.create(uuid=f"00000000-0000-4000-8000-{n:012d}", learner=lrn, template=tpl,
                        status=status, provider_state="created", awarded_at=T,
                        award_event_id=f"evt-{n}", updated_at=T)


def refused(services: Services, create: object) -> None:
    """The insert fails with IntegrityError and leaves nothing behind."""
    with pytest.raises(IntegrityError), services.database.atomic():
        create()


# -- constraints ---------------------------------------------------------------------------


def test_template_unique_per_provider_account_external_id(services):
    org1, org2 = account(identifier="org-1"), account(identifier="org-2")
    acc = account("accredible", "Accredible One")
    template(org1, "shared")
    template(org2, "shared")  # same external id in another account
    template(acc, "shared")  # and at another provider
    refused(services, lambda: template(org1, "shared"))
    refused(services, lambda: template(org2, "shared"))
    refused(services, lambda: template(acc, "shared"))
    assert Template.select().where(Template.external_id == "shared").count() == 3
    template(org1, "other")
    assert Template.select().count() == 4


def test_provider_account_unique_per_provider_and_identifier(services):
    account("credly", "same")
    account("accredible", "same")
    refused(services, lambda: account("credly", "same"))
    assert ProviderAccount.select().count() == 2


def test_requirement_key_unique_per_template(services):
    org = account()
    t1, t2 = template(org, "t1"), template(org, "t2")
    Requirement.create(template=t1, key="demo", event_type="e", group="A")
    Requirement.create(template=t2, key="demo", event_type="e", group="A")
    refused(services, lambda: Requirement.create(template=t1, key="demo", event_type="e",
                                                 group="B"))


def test_one_progress_per_learner_and_template(services):
    org = account()
    t1, t2 = template(org, "t1"), template(org, "t2")
    ann, bob = learner("ann"), learner("bob")
    Progress.create(learner=ann, template=t1, updated_at=T)
    Progress.create(learner=ann, template=t2, updated_at=T)
    Progress.create(learner=bob, template=t1, updated_at=T)
    refused(services, lambda: Progress.create(learner=ann, template=t1, updated_at=T))
    assert Progress.select().count() == 3


def test_learner_username_unique(services):
    learner("ann")
    refused(services, lambda: learner("ann"))


def test_one_fulfillment_per_progress_and_requirement(services):
    org = account()
    tpl = template(org)
    r1 = Requirement.create(template=tpl, key="a", event_type="e", group="A")
    r2 = Requirement.create(template=tpl, key="b", event_type="e", group="B")
    ann, bob = learner("ann"), learner("bob")
    p1 = Progress.create(learner=ann, template=tpl, updated_at=T)
    p2 = Progress.create(learner=bob, template=tpl, updated_at=T)

    def fulfil(progress: Progress, req: Requirement, event_id: str) -> Fulfillment:
        return Fulfillment.create(progress=progress, requirement=req, event_id=event_id,
                                  event_time=T, fulfilled_at=T)

    fulfil(p1, r1, "e1")
    fulfil(p1, r2, "e2")
    fulfil(p2, r1, "e1")
    refused(services, lambda: fulfil(p1, r1, "e3"))
    assert Fulfillment.select().count() == 3
    assert Fulfillment.get((Fulfillment.progress == p1) & (Fulfillment.requirement == r1)) \
        .event_id == "e1"


def test_intake_event_id_unique_but_unclaimed_records_repeat(services):
    def record(event_id: str | None, ref_id: str, outcome: str) -> IntakeRecord:
        return IntakeRecord.create(event_id=event_id, ref_id=ref_id, outcome=outcome,
                                   received_at=T)

    record("evt-1", "evt-1", "processed")
    refused(services, lambda: record("evt-1", "evt-1", "processed"))
    # duplicates and rejects do not claim the id: any number of them
    record(None, "evt-1", "duplicate")
    record(None, "evt-1", "duplicate")
    record(None, None, "rejected")
    assert IntakeRecord.select().where(IntakeRecord.ref_id == "evt-1").count() == 3


def test_at_most_one_awarded_badge_per_learner_and_template(services):
    org = account()
    t1, t2 = template(org, "t1"), template(org, "t2")
    ann, bob = learner("ann"), learner("bob")
    badge(ann, t1, "revoked", 1)
    badge(ann, t1, "revoked", 2)
    badge(ann, t1, "awarded", 3)
    refused(services, lambda: badge(ann, t1, "awarded", 4))
    badge(ann, t2, "awarded", 5)
    badge(bob, t1, "awarded", 6)
    badge(ann, t1, "revoked", 7)
    assert Badge.select().where((Badge.learner == ann) & (Badge.template == t1)).count() == 4
    # once the held badge is revoked, a new award is allowed
    Badge.update(status="revoked").where(Badge.uuid.endswith("000000000003")).execute()
    badge(ann, t1, "awarded", 8)
    refused(services, lambda: Badge.update(status="awarded")
            .where(Badge.uuid.endswith("000000000001")).execute())


def test_badge_uuid_unique(services):
    org = account()
    tpl = template(org)
    badge(learner("ann"), tpl, "revoked", 1)
    refused(services, lambda: badge(learner("bob"), tpl, "revoked", 1))


def test_foreign_keys_are_enforced_and_cascade(services):
    org = account()
    tpl = template(org)
    req = Requirement.create(template=tpl, key="a", event_type="e", group="A")
    DataRule.create(requirement=req, path="is_passing", op="eq", value="true")
    refused(services, lambda: Requirement.create(template=9999, key="x", event_type="e",
                                                 group="A"))
    Template.delete().where(Template.id == tpl.id).execute()
    assert Requirement.select().count() == 0
    assert DataRule.select().count() == 0


# -- SQLite settings -----------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_sqlite_wal_and_busy_timeout(services, db_url):
    database = services.database
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    # WAL is a property of the file: another connection sees it too
    services.close()
    with sqlite3.connect(db_url) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


@pytest.mark.sqlite_only
def test_every_new_connection_gets_the_pragmas(db_url):
    database = open_database(db_url)
    for _ in range(2):
        database.connect(reuse_if_open=True)
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        database.close()


# -- migrations ----------------------------------------------------------------------------

SCHEMA_0001 = {
    "audit_log", "learner", "provider_account", "template", "badge", "requirement", "penalty",
    "data_rule", "delivery_job", "progress", "fulfillment", "intake_record", "outgoing_event",
    "penalty_requirement",
}


def test_migration_names_are_numbered_and_ordered():
    names = migration_names()
    assert names[0] == "0001_initial"
    assert names == sorted(names)
    assert [int(n[:4]) for n in names] == list(range(1, len(names) + 1))


def test_fresh_database_migrates_to_latest(db_url):
    database = open_database(str(db_url))
    database.connect(reuse_if_open=True)
    try:
        assert schema_version(database) == len(migration_names())
        tables = set(database.get_tables())
        assert SCHEMA_0001 | {"config_backup", "meta", HISTORY_TABLE} <= tables
        # opening again applies nothing more
        assert migrate(database) == []
    finally:
        database.close()
    again = open_database(str(db_url))
    again.connect(reuse_if_open=True)
    try:
        assert schema_version(again) == len(migration_names())
    finally:
        again.close()


def test_upgrade_from_0001_keeps_rows_usable(db_url, clock):
    old = make_database(str(db_url))
    old.connect()
    try:
        with old.atomic():
            assert migrate(old, target="0001_initial") == ["0001_initial"]
        assert schema_version(old) == 1
        tables = set(old.get_tables())
        assert tables >= SCHEMA_0001
        assert "config_backup" not in tables
        assert "meta" not in tables
        stamp = "2026-10-01 08:00:00"

        def insert(sql: str, params: tuple) -> None:
            old.execute_sql(sql.replace("?", old.param), params)

        insert(
            "INSERT INTO provider_account (provider, identifier, name, api_key, created_at, "
            "last_sync_result, paused_reason) VALUES (?, ?, ?, ?, ?, '', '')",
            ("credly", "org-old", "Old Org", "old-key-9999", stamp),
        )
        insert(
            "INSERT INTO template (account_id, provider, external_id, name, description, "
            "image_url, state, is_active, stale, deleted, created_at, updated_at) "
            "VALUES (1, 'credly', 'tpl-old', 'Old template', '', '', 'active', FALSE, FALSE, "
            "FALSE, ?, ?)",
            (stamp, stamp),
        )
        insert(
            "INSERT INTO learner (username, email, name, lms_id, is_active, updated_at) "
            "VALUES ('old-learner', 'old@example.org', 'Old Learner', 3, TRUE, ?)",
            (stamp,),
        )
    finally:
        old.close()

    services = Services.open(Settings(db=str(db_url)), clock=clock)
    try:
        assert schema_version(services.database) == len(migration_names())
        assert {"config_backup", "meta"} <= set(services.database.get_tables())
        acct = ProviderAccount.get(ProviderAccount.identifier == "org-old")
        assert acct.name == "Old Org"
        assert acct.api_key == "old-key-9999"
        assert acct.created_at == datetime(2026, 10, 1, 8, 0)
        tpl = Template.get(Template.external_id == "tpl-old")
        assert tpl.account.identifier == "org-old"
        assert tpl.is_active is False
        old_learner = Learner.get(Learner.username == "old-learner")
        assert old_learner.lms_id == 3

        # the migrated rows take part in configuration and processing
        services.config.import_text(config_text(template_config("tpl-old", [
            requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO)),
        ])))
        assert Template.get_by_id(tpl.id).is_active is True
        report = services.intake.ingest_lines(jsonl(course_event("old-learner", DEMO)), "t")
        assert report.counts["processed"] == 1
        held = Badge.get()
        assert (held.learner_id, held.template_id, held.status) == (
            old_learner.id, tpl.id, "awarded"
        )
        assert Learner.select().count() == 1
        assert Learner.get_by_id(old_learner.id).email == "old-learner@example.org"
    finally:
        services.close()


def test_unknown_migration_in_database_is_refused(db_url):
    database = open_database(str(db_url))
    database.connect(reuse_if_open=True)
    database.execute_sql(
        f"INSERT INTO {HISTORY_TABLE} (name, applied) VALUES (?, ?)".replace("?", database.param),
        ("0999_from_the_future", "2030-01-01 00:00:00"),
    )
    database.close()
    with pytest.raises(SchemaError, match="0999_from_the_future"):
        open_database(str(db_url))
    other = make_database(str(db_url))
    other.connect()
    try:
        with pytest.raises(SchemaError):
            migrate(other)
    finally:
        other.close()


def test_migrated_schema_matches_the_models(db_url):
    database = open_database(str(db_url))
    database.connect(reuse_if_open=True)
    try:
        diff = diff_models(database, MODELS)
        assert not diff, str(diff)
        for model in MODELS:
            columns = {c.name for c in database.get_columns(model._meta.table_name)}
            assert columns == {f.column_name for f in model._meta.sorted_fields}, model
        # the partial unique index on held badges exists as the model declares it
        badge_indexes = {i.name: i for i in database.get_indexes("badge")}
        partial = [i for i in badge_indexes.values() if "WHERE" in (i.sql or "").upper()]
        assert len(partial) == 1
        assert partial[0].unique
        assert partial[0].columns[:2] == ["learner_id", "template_id"]
    finally:
        database.close()


def test_schema_upgraded_from_0001_matches_the_models(db_url):
    old = make_database(str(db_url))
    old.connect()
    with old.atomic():
        migrate(old, target="0001_initial")
    old.close()
    database = open_database(str(db_url))
    database.connect(reuse_if_open=True)
    try:
        diff = diff_models(database, MODELS)
        assert not diff, str(diff)
    finally:
        database.close()


#: The indexes of migration 0004, for the console's paged and filtered lists (bench/tui.py).
LIST_INDEXES = {
    "badge": {("template_id", "status", "learner_id")},
    "intake_record": {("username", "outcome")},
}


def _index_columns(database, table: str) -> set[tuple[str, ...]]:
    return {tuple(i.columns) for i in database.get_indexes(table)}


def test_upgrade_from_0003_adds_the_list_indexes(db_url):
    old = make_database(str(db_url))
    old.connect()
    try:
        with old.atomic():
            assert migrate(old, target="0003_delivery_lease")[-1] == "0003_delivery_lease"
        assert schema_version(old) == 3
        for table, wanted in LIST_INDEXES.items():
            assert not wanted & _index_columns(old, table), table
        stamp = "2026-10-01 08:00:00"

        def insert(sql: str, params: tuple) -> None:
            old.execute_sql(sql.replace("?", old.param), params)

        insert("INSERT INTO provider_account (provider, identifier, name, api_key, created_at, "
               "last_sync_result, paused_reason) VALUES ('credly', 'org', 'Org', 'k', ?, '', '')",
               (stamp,))
        insert("INSERT INTO template (account_id, provider, external_id, name, description, "
               "image_url, state, is_active, stale, deleted, created_at, updated_at) VALUES "
               "(1, 'credly', 'tpl', 'T', '', '', 'active', TRUE, FALSE, FALSE, ?, ?)",
               (stamp, stamp))
        insert("INSERT INTO learner (username, email, name, is_active, updated_at) "
               "VALUES ('ann', '', '', TRUE, ?)", (stamp,))
        insert("INSERT INTO badge (uuid, learner_id, template_id, status, provider_state, "
               "last_error, awarded_at, award_event_id, revoke_reason, evidence, updated_at) "
               "VALUES ('u-1', 1, 1, 'awarded', 'issued', '', ?, 'e-1', '', '', ?)",
               (stamp, stamp))
        insert("INSERT INTO progress (learner_id, template_id, fulfilled_groups, complete, "
               "badge_id, updated_at) VALUES (1, 1, 1, TRUE, 1, ?)", (stamp,))
        insert("INSERT INTO intake_record (event_id, ref_id, outcome, reason, source, username, "
               "received_at, effects) VALUES ('e-1', 'e-1', 'processed', '', 'f', 'ann', ?, '')",
               (stamp,))
    finally:
        old.close()

    database = open_database(str(db_url))
    database.connect(reuse_if_open=True)
    try:
        assert schema_version(database) == len(migration_names()) >= 4
        for table, wanted in LIST_INDEXES.items():
            assert wanted <= _index_columns(database, table), table
        assert ("username",) not in _index_columns(database, "intake_record")  # replaced
        diff = diff_models(database, MODELS)
        assert not diff, str(diff)
        newest = Progress.select().where(Progress.complete == True)  # noqa: E712
        assert [p.badge_id for p in newest.order_by(Progress.updated_at.desc())] == [1]
        held = Badge.select().where((Badge.status == "awarded") & (Badge.template == 1))
        assert held.count() == 1
        assert IntakeRecord.select().where(
            (IntakeRecord.outcome == "processed") & (IntakeRecord.username == "ann")
        ).count() == 1
    finally:
        database.close()


@pytest.mark.sqlite_only
def test_list_queries_use_the_list_indexes(db_url):
    """SQLite (without statistics, as the app leaves it) reads the lists through 0004's indexes:
    in the order asked for, no sort, and the awarded counts from the index alone. And they tempt
    no other query: `complete` in id order still scans the table, `status = ?` keeps
    badge_status (rowid order)."""
    database = open_database(db_url)
    database.connect(reuse_if_open=True)

    def plan(sql: str) -> str:
        return "; ".join(row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql))

    try:
        for sql, index in [
            ("SELECT id FROM progress WHERE complete = 1 ORDER BY id DESC LIMIT 201", "SCAN"),
            ("SELECT t.id, (SELECT COUNT(*) FROM badge b WHERE b.template_id = t.id "
             "AND b.status = 'awarded') FROM template t",
             "COVERING INDEX badge_template_id_status_learner_id"),
            ("SELECT COUNT(*) FROM badge b JOIN learner l ON l.id = b.learner_id "
             "WHERE b.status = 'revoked' AND b.template_id = 3",
             "COVERING INDEX badge_template_id_status_learner_id"),
            ("SELECT id FROM badge WHERE status = 'awarded' ORDER BY id DESC LIMIT 201",
             "badge_status"),
            ("SELECT id FROM badge WHERE status = 'awarded' AND external_id = 'x'",
             "badge_status"),
            ("SELECT id FROM intake_record WHERE outcome = 'processed' AND username = 'ann' "
             "ORDER BY id DESC LIMIT 201", "intake_record_username_outcome"),
            ("SELECT id FROM intake_record WHERE outcome || '' = 'processed' AND username >= 'a'"
             " AND username < 'a\U0010ffff' ORDER BY id DESC LIMIT 201",
             "intake_record_username_outcome"),
            ("SELECT id FROM intake_record WHERE outcome = 'ignored' ORDER BY id DESC LIMIT 201",
             "intakerecord_outcome"),
        ]:
            found = plan(sql)
            assert index in found, (sql, found)
            if "LIMIT" in sql and "username" not in sql:
                assert "TEMP B-TREE" not in found, (sql, found)
    finally:
        database.close()
