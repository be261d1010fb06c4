"""Small pieces every service shares: the injectable clock, UTC handling, errors, counters,
bulk writes and transactions that survive PostgreSQL's concurrency conflicts."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from peewee import (
    Database,
    DatabaseError,
    Field,
    Model,
    PostgresqlDatabase,
    __exception_wrapper__,
)

from badgetui.store.database import pg_text
from badgetui.store.models import DeliveryJob, Meta, db

Clock = Callable[[], datetime]
T = TypeVar("T")

#: SQLSTATEs after which PostgreSQL expects the whole transaction to be tried again:
#: serialization_failure, deadlock_detected, lock_not_available.
RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: Tries of one transaction before a conflict is reported as an error.
TRANSACTION_ATTEMPTS = 10

CONFIG_GENERATION = "config_generation"


class ServiceError(Exception):
    """An operator-facing failure: its message is the one line a user sees."""


class NotFound(ServiceError):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_db(moment: datetime | None) -> datetime | None:
    """Naive UTC for storage (both SQLite and PostgreSQL keep it as written)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def from_db(moment: datetime | str | None) -> datetime | None:
    """Aware UTC from a stored value."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | str | None) -> str | None:
    value = from_db(moment)
    return value.isoformat() if value else None


def current_database() -> Database:
    return db.obj


def is_postgres(database: Database | None = None) -> bool:
    """PostgreSQL: row locks (FOR UPDATE) are how processes take turns, not a file lock."""
    return isinstance(database or current_database(), PostgresqlDatabase)


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction may simply be run again."""
    for candidate in (exc, *exc.args, exc.__cause__, exc.__context__):
        if getattr(candidate, "pgcode", None) in RETRY_SQLSTATES:
            return True
    return False


def in_transaction(work: Callable[[], T], *, attempts: int = TRANSACTION_ATTEMPTS) -> T:
    """Run `work` in one transaction; run it again from the start when PostgreSQL aborts it as
    the loser of a deadlock or serialization conflict (several processes on one database), so
    such conflicts cost a retry, never an event or a delivery. Inside an outer transaction it
    joins that one and leaves the retrying to its owner (a savepoint keeps the locks taken)."""
    database = current_database()
    if database.in_transaction():
        with database.atomic():
            return work()
    for attempt in range(1, attempts + 1):
        try:
            with database.atomic():
                return work()
        except DatabaseError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
        # Jittered, growing pause: the processes that collided should not collide again.
        time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
    raise AssertionError("unreachable")


def executemany(sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement for many rows (`?` placeholders, adapted to the database)."""
    if not rows:
        return
    database = current_database()
    if database.param != "?":
        sql = sql.replace("?", database.param)
        with __exception_wrapper__:  # driver errors become peewee's (IntegrityError, ...)
            _pg_extras().execute_batch(database.cursor(), sql, _pg_rows(rows), page_size=200)
        return
    # Text exactly as Peewee writes it (sqlite3's implicit datetime adapter is deprecated).
    rows = [tuple(_sqlite_text(v) for v in row) for row in rows]
    with __exception_wrapper__:
        database.cursor().executemany(sql, rows)


def insert_rows(model: type[Model], fields: Sequence[Field], rows: Sequence[Sequence[Any]]) -> None:
    """Bulk insert through the driver's executemany: far cheaper than building SQL per row."""
    if not rows:
        return
    names = {f.name for f in fields}
    defaults = [
        f for f in model._meta.sorted_fields
        if f.name not in names and not f.primary_key and f.default is not None
        and not callable(f.default)
    ]
    if defaults:
        tail = tuple(f.db_value(f.default) for f in defaults)
        fields = [*fields, *defaults]
        rows = [(*row, *tail) for row in rows]
    table = model._meta.table_name
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    database = current_database()
    if database.param != "?":
        # psycopg2's executemany is one round trip per row; one multi-row VALUES per page.
        with __exception_wrapper__:
            _pg_extras().execute_values(
                database.cursor(), f'INSERT INTO "{table}" ({columns}) VALUES %s',
                _pg_rows(rows), page_size=500,
            )
        return
    marks = ", ".join("?" for _ in fields)
    executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', rows)


def _pg_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(pg_text(v) for v in row) for row in rows]


def _pg_extras() -> Any:
    import psycopg2.extras  # only ever reached with a PostgreSQL database open

    return psycopg2.extras


def _sqlite_text(value: Any) -> Any:
    return value.isoformat(" ") if isinstance(value, datetime) else value


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def set_meta(key: str, value: int) -> None:
    """Store one shared counter or mark (the Meta table)."""
    if not Meta.update(value=value).where(Meta.key == key).execute():
        Meta.insert(key=key, value=value).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: value}).execute()


def config_generation() -> int:
    row = Meta.get_or_none(Meta.key == CONFIG_GENERATION)
    return row.value if row else 0


def bump_config_generation() -> None:
    """Tell every process that the active configuration changed (matchers rebuild)."""
    updated = (
        Meta.update(value=Meta.value + 1).where(Meta.key == CONFIG_GENERATION).execute()
    )
    if not updated:
        Meta.insert(key=CONFIG_GENERATION, value=1).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: Meta.value + 1}
        ).execute()


def stop_issue(badge_id: int, stamp: datetime | None) -> bool:
    """Stop a badge's issue because it is being revoked. True when the issue never reached the
    provider (cancelled: nothing to revoke there); False when an earlier attempt may have, so
    the caller queues a revoke job, which looks the badge up and revokes whatever exists."""
    issue = (DeliveryJob.badge == badge_id) & (DeliveryJob.kind == "issue")
    cancelled = (
        DeliveryJob.update(state="cancelled", updated_at=stamp)
        .where(issue & (((DeliveryJob.state == "queued") & (DeliveryJob.attempts == 0))
                        | (DeliveryJob.state == "failed")))
        .execute()
    )
    if not cancelled:
        DeliveryJob.update(state="cancelled", updated_at=stamp).where(
            issue & (DeliveryJob.state == "queued")).execute()
    return bool(cancelled)
