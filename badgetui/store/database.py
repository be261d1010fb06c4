"""Opening the database: SQLite (WAL, busy timeout) by default, PostgreSQL by URL.

`open_database` binds the models and brings the schema up to date with the migrations in
`store/migrations/`, so a database made by an earlier version opens after later changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse.migrations import Runner

from badgetui.store.models import db

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
HISTORY_TABLE = "schema_migration"
#: PostgreSQL advisory lock class held while migrating a schema ("badg"; with the schema name).
MIGRATION_LOCK = 0x62616467
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30_000,
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -64_000,
}


class SchemaError(RuntimeError):
    """The database was made by a newer badgetui, or cannot be migrated."""


#: PostgreSQL text cannot hold NUL characters (the driver refuses the whole statement); they
#: are stored as U+FFFD there, so a NUL in an event is not fatal. SQLite keeps them as they are.
NUL_STANDIN = "\ufffd"


def pg_text(value: Any) -> Any:
    """`value` as PostgreSQL can store it (see NUL_STANDIN)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", NUL_STANDIN)
    return value


class BadgePostgresDatabase(PostgresqlDatabase):
    """PostgreSQL with parameters made storable (every query goes through `execute_sql`) and
    sessions in UTC, the zone of the naive timestamps stored, whatever the server's default."""

    def _initialize_connection(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if params:
            params = tuple(pg_text(p) for p in params)
        return super().execute_sql(sql, params)


def make_database(url: str) -> Database:
    """A Peewee database for a path, `sqlite:///path` or `postgresql://user@host/db` URL.

    Query parameters of a PostgreSQL URL go to libpq as they are (`sslmode`, `connect_timeout`,
    `application_name`, `options=-csearch_path%3Dbadges` to keep the tables in a schema, ...).
    """
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlparse(url)
        options: dict[str, object] = dict(parse_qsl(parts.query))
        if parts.username:
            options["user"] = unquote(parts.username)
        if parts.password:
            options["password"] = unquote(parts.password)
        if parts.hostname:
            options["host"] = parts.hostname
        if parts.port:
            options["port"] = parts.port
        name = parts.path.lstrip("/") or "postgres"
        return BadgePostgresDatabase(unquote(name), **options)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        path = os.fspath(Path(path).expanduser())
    # IMMEDIATE: a writer takes the lock when its transaction begins, so processes sharing the
    # file queue on the busy timeout instead of failing to upgrade a read lock.
    return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=30, lock_type="IMMEDIATE")


def migration_names() -> list[str]:
    return sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9]*.py"))


def schema_version(database: Database) -> int:
    """Number of the newest migration applied (0 for an empty database)."""
    runner = Runner(database, os.fspath(MIGRATIONS_DIR), table_name=HISTORY_TABLE)
    applied = runner.applied()
    return max((int(name[:4]) for name in applied), default=0)


def migrate(database: Database, target: str | None = None) -> list[str]:
    """Apply pending migrations (up to `target`); refuse a schema newer than this code."""
    if isinstance(database, PostgresqlDatabase) and database.in_transaction():
        # Processes starting together take turns: the second finds the work done instead of
        # failing on "relation already exists" (SQLite's IMMEDIATE transaction does the same).
        database.execute_sql(
            "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (MIGRATION_LOCK,)
        )
    runner = Runner(database, os.fspath(MIGRATIONS_DIR), table_name=HISTORY_TABLE)
    known = set(migration_names())
    unknown = sorted(set(runner.applied()) - known)
    if unknown:
        raise SchemaError(
            f"database schema has migration {unknown[-1]} unknown to this badgetui;"
            " upgrade badgetui"
        )
    return runner.up(target)


def open_database(url: str, *, migrate_schema: bool = True) -> Database:
    """Open, bind the models to, and (by default) migrate the database at `url`."""
    database = make_database(url)
    db.initialize(database)
    database.connect(reuse_if_open=True)
    try:
        if migrate_schema:
            with database.atomic():
                migrate(database)
    finally:
        database.close()
    return database
