"""Small pieces every service shares: the injectable clock, UTC handling, errors, counters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from peewee import Database, Field, Model, __exception_wrapper__

from badgetui.store.models import Meta, db

Clock = Callable[[], datetime]

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


def executemany(sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement for many rows (`?` placeholders, adapted to the database)."""
    if not rows:
        return
    database = current_database()
    if database.param != "?":
        sql = sql.replace("?", database.param)
    else:
        # Text exactly as Peewee writes it (sqlite3's implicit datetime adapter is deprecated).
        rows = [tuple(_sqlite_text(v) for v in row) for row in rows]
    with __exception_wrapper__:  # driver errors become peewee's (IntegrityError, ...)
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
    marks = ", ".join("?" for _ in fields)
    executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', rows)


def _sqlite_text(value: Any) -> Any:
    return value.isoformat(" ") if isinstance(value, datetime) else value


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
