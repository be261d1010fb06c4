"""Opening the database: SQLite (WAL, busy timeout) by default, PostgreSQL by URL.

`open_database` binds the models and brings the schema up to date with the migrations in
`store/migrations/`, so a database made by an earlier version opens after later changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse.migrations import Runner

from badgetui.store.models import db

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
HISTORY_TABLE = "schema_migration"
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30_000,
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -64_000,
}


class SchemaError(RuntimeError):
    """The database was made by a newer badgetui, or cannot be migrated."""


def make_database(url: str) -> Database:
    """A Peewee database for a path, `sqlite:///path` or `postgresql://user@host/db` URL."""
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlparse(url)
        options: dict[str, object] = {}
        if parts.username:
            options["user"] = unquote(parts.username)
        if parts.password:
            options["password"] = unquote(parts.password)
        if parts.hostname:
            options["host"] = parts.hostname
        if parts.port:
            options["port"] = parts.port
        name = parts.path.lstrip("/") or "postgres"
        return PostgresqlDatabase(name, autorollback=True, **options)
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
