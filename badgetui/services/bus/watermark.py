"""The watermark of a (stream, group): every entry up to it is resolved (see `BusConsumer`)."""

from __future__ import annotations

import hashlib

from badgetui.services.bus.entries import ORIGIN, StreamId
from badgetui.services.common import is_postgres
from badgetui.store.models import Meta


def watermark_keys(stream: str, group: str) -> tuple[str, str]:
    """The two `Meta` rows of a (stream, group)'s watermark, an entry id: its milliseconds and
    its sequence number (a `Meta` value is one integer, and no migration is needed). A key holds
    64 characters: long names are hashed."""
    name = f"{stream}:{group}"
    if len(name) > 52:
        name = hashlib.sha256(f"{stream}\0{group}".encode()).hexdigest()[:40]
    return f"bus.ms:{name}", f"bus.seq:{name}"


def read_watermark(keys: tuple[str, str], *, lock: bool = False) -> StreamId | None:
    """The stored watermark (None when there is none); `lock` keeps its rows locked until the
    transaction ends on PostgreSQL (SQLite's write transaction holds the whole file already)."""
    query = Meta.select(Meta.key, Meta.value).where(Meta.key.in_(keys)).order_by(Meta.key)
    if lock and is_postgres():
        query = query.for_update()
    values = dict(query.tuples())
    if keys[0] not in values:
        return None
    return int(values[keys[0]]), int(values.get(keys[1]) or 0)


def lock_watermark(keys: tuple[str, str]) -> StreamId:
    """The watermark, locked until the transaction ends; created at the origin if missing."""
    mark = read_watermark(keys, lock=True)
    if mark is None:
        Meta.insert_many([{Meta.key: key, Meta.value: 0} for key in keys]).on_conflict_ignore(
        ).execute()
        mark = read_watermark(keys, lock=True) or ORIGIN
    return mark


def write_watermark(keys: tuple[str, str], mark: StreamId) -> None:
    for key, value in zip(keys, mark, strict=True):
        Meta.insert(key=key, value=value).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: value}).execute()

