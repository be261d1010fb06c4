"""What PostgreSQL does differently from SQLite, held to SQLite's behaviour: text of any length
and with NUL characters, URL options, migrations started by several processes at once, and
transactions that lose a deadlock being run again. The tests taking `backend` run on both."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from peewee import fn

from badgetui.services.common import in_transaction
from badgetui.store.database import open_database, schema_version
from badgetui.store.models import AuditLog, Badge, IntakeRecord, Learner, Meta
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config


def test_text_sqlite_takes_is_taken_everywhere(services, synced):
    """Long ids, usernames and sources, and NUL characters: processed (and deduplicated) the
    same on both backends, never a failed batch (PostgreSQL enforces VARCHAR lengths and
    refuses NUL, see migration 0005 and `pg_text`)."""
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO))])))
    long_id = "id-" + "x" * 300
    long_name = "learner-" + "y" * 300
    events = [
        course_event(long_name, DEMO, event_id=long_id),
        course_event("nul\x00name", DEMO, event_id="nul\x00id"),
        course_event("ann", DEMO),
    ]
    source = "/very/long/path/" + "z" * 300 + ".jsonl"
    first = services.intake.ingest_lines(jsonl(*events), source)
    again = services.intake.ingest_lines(jsonl(*events), source)
    assert (first.counts["processed"], first.counts["rejected"], first.awarded) == (3, 0, 3)
    assert (again.counts["duplicate"], again.counts["processed"]) == (3, 0)
    assert Learner.select().count() == 3
    assert Badge.select().where(Badge.award_event_id == long_id).count() == 1
    assert Learner.get(Learner.username == long_name).email == f"{long_name}@example.org"
    assert {len(r.source) for r in IntakeRecord.select()} == {len(source)}


@pytest.mark.postgres_only
def test_url_options_reach_the_server(db_url, services):
    """`?options=-csearch_path%3D...&application_name=...` (how the tests give every test its
    own schema) is passed to libpq: the tables are made in that schema, nowhere else."""
    schema = services.database.execute_sql("SELECT current_schema()").fetchone()[0]
    assert schema.startswith("badgetui_t_") and schema in db_url
    name = services.database.execute_sql("SHOW application_name").fetchone()[0]
    assert name == schema
    assert "learner" in services.database.get_tables(schema=schema)


@pytest.mark.postgres_only
def test_sessions_are_in_utc_whatever_the_server_says(db_url):
    """Timestamps are stored naive in UTC; a server (or URL) in another zone must not shift
    them when compared with zone-aware values."""
    parts = urlsplit(db_url)
    query = dict(parse_qsl(parts.query))
    query["options"] = "-cTimeZone=Pacific/Chatham " + query["options"]
    database = open_database(urlunsplit(parts._replace(query=urlencode(query))))
    database.connect(reuse_if_open=True)
    try:
        assert database.execute_sql("SHOW TimeZone").fetchone()[0] == "UTC"
        AuditLog.create(at=datetime(2026, 11, 1, 12, 0), actor="t", action="a")
        after = datetime(2026, 11, 1, 11, 59, tzinfo=UTC)
        assert AuditLog.select().where(AuditLog.at >= after).count() == 1
    finally:
        database.close()


def test_processes_migrating_at_once_all_succeed(db_url):
    """Consumers started together on an empty database: one migrates, the others wait and find
    the schema current (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock)."""
    code = ("import sys; from badgetui.store.database import open_database, schema_version;"
            "d = open_database(sys.argv[1]); d.connect(); print(schema_version(d))")
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    database = open_database(db_url)
    database.connect(reuse_if_open=True)
    try:
        expected = schema_version(database)
    finally:
        database.close()
    assert {int(out) for out, _ in outputs} == {expected}


@pytest.mark.postgres_only
def test_a_deadlock_costs_a_retry_not_the_work(services):
    """Two transactions taking two rows in opposite orders: PostgreSQL aborts one as the
    deadlock victim; `in_transaction` runs it again and both changes land."""
    for key in ("a", "b"):
        Meta.insert(key=key, value=0).execute()
    barrier = threading.Barrier(2, timeout=30)
    attempts = {"first": 0, "second": 0}
    errors: list[BaseException] = []

    def work(name: str, keys: tuple[str, str]) -> None:
        def transaction() -> None:
            attempts[name] += 1
            for number, key in enumerate(keys):
                Meta.update(value=Meta.value + 1).where(Meta.key == key).execute()
                if number == 0 and attempts[name] == 1:
                    barrier.wait()  # both hold their first row: the second update deadlocks

        try:
            in_transaction(transaction)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            services.database.close()  # this thread's connection

    threads = [threading.Thread(target=work, args=("first", ("a", "b"))),
               threading.Thread(target=work, args=("second", ("b", "a")))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert dict(Meta.select(Meta.key, Meta.value).where(Meta.key.in_(["a", "b"])).tuples()) == {
        "a": 2, "b": 2}
    assert sorted(attempts.values()) == [1, 2]  # exactly one victim, run once more


def test_json_payload_round_trip(services):
    """Payloads (with escaped NULs) come back byte for byte from either backend."""
    event = course_event("ann", DEMO, event_id="p-1")
    event["data"]["course_passing_status"]["course"]["display_name"] = "a\x00b ü"
    services.intake.ingest_lines(jsonl(event), "t")
    stored = IntakeRecord.get(IntakeRecord.ref_id == "p-1").payload
    assert json.loads(stored)["course"]["display_name"] == "a\x00b ü"
    assert IntakeRecord.select(fn.COUNT(IntakeRecord.id)).scalar() == 1


@pytest.mark.postgres_only
def test_text_sorts_and_ranges_as_on_sqlite_in_a_linguistic_database(backend):
    """In a database whose default collation is linguistic (ICU English here, like the common
    en_US.UTF-8), usernames still sort byte-wise and a learner prefix matches exactly as on
    SQLite (migration 0005 gives the text columns COLLATE "C")."""
    from badgetui.services.queries import list_intake

    names = ["alice", "Bob", "ann", "Ann", "añn", "anne", "ANNE", "ann-b"]
    stamp = datetime(2026, 11, 1)
    with _icu_database() as url:
        database = open_database(url)
        database.connect(reuse_if_open=True)
        try:
            linguistic = "SELECT 'Bob' < 'alice', 'Ann' >= 'ann' AND 'Ann' < 'ann' || chr(1114111)"
            assert database.execute_sql(linguistic).fetchone() == (False, True)
            for name in names:
                Learner.create(username=name, updated_at=stamp)
                IntakeRecord.create(event_id=f"e-{name}", ref_id=f"e-{name}",
                                    outcome="processed", username=name, received_at=stamp)
            ordered = [n for (n,) in Learner.select(Learner.username)
                       .order_by(Learner.username).tuples()]
            assert ordered == sorted(names)  # code point order, as SQLite's BINARY
            assert [r.username for r in list_intake(learner_prefix="ann")] == [
                "ann", "anne", "ann-b"]
        finally:
            database.close()


@contextmanager
def _icu_database() -> Iterator[str]:
    """A new database (not just a schema) whose default collation is ICU English."""
    import psycopg2

    from tests.conftest import POSTGRES_URL

    parts = urlsplit(POSTGRES_URL)
    name = f"badgetui_t_{secrets.token_hex(6)}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING UTF8 '
                        "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'")
        try:
            yield urlunsplit(parts._replace(path=f"/{name}", query=urlencode(
                {**dict(parse_qsl(parts.query)), "application_name": name})))
        finally:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.close()
