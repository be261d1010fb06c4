"""What a consumer tells its operator about its stream: a wrong name, lag, trimmed entries.

Tutor's badges plugin publishes to `<random prefix>-learning-badges-lifecycle`, so the default
stream name is often wrong; a consumer on the wrong stream would wait forever in silence.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from badgetui.domain import avro
from badgetui.services.bus.config import BusConfig, log
from badgetui.services.bus.entries import id_key

#: The stream names Open edX gives the badges topic (`EVENT_BUS_TOPIC_PREFIX` first).
LIFECYCLE_PATTERN = "*-learning-badges-lifecycle"


def without_schema(event_types: Iterable[str]) -> list[str]:
    """Configured types the bus cannot decode: Redis entries carry no schema."""
    return sorted(t for t in event_types if not avro.has_schema(t))


def refuse_without_schema(event_types: Iterable[str]) -> None:
    """One line, at start-up, instead of dead-lettering every entry of such a type."""
    missing = without_schema(event_types)
    if missing:
        raise ValueError(
            f"BADGETUI_EVENTS names {len(missing)} type(s) the event bus cannot decode (no Avro "
            f"schema): {', '.join(missing)}; remove them, or feed them as JSON with "
            "`badgetui events ingest`")


def other_streams(client: redis.Redis, stream: str, limit: int = 5) -> list[tuple[str, int]]:
    """Non-empty streams named like a badges topic other than ours, longest first."""
    found: list[tuple[str, int]] = []
    for key in client.scan_iter(match=LIFECYCLE_PATTERN, count=1000, _type="STREAM"):
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if name == stream or name.endswith("-badgetui-dlq"):
            continue
        length = int(client.xlen(key))
        if length:
            found.append((name, length))
    found.sort(key=lambda item: (-item[1], item[0]))
    return found[:limit]


def _named(streams: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} ({length:,} entries)" for name, length in streams)


def warn_created(client: redis.Redis, config: BusConfig) -> str:
    """The line logged when the consumer had to create its stream: nobody publishes there."""
    others = other_streams(client, config.stream)
    line = (f"stream {config.stream} did not exist: created it empty, so nothing has been "
            "published there")
    line += (f"; streams with entries: {_named(others)}; set BADGETUI_BUS_STREAM or --stream"
             if others else "; check BADGETUI_BUS_STREAM against the LMS's "
                            "EVENT_BUS_TOPIC_PREFIX")
    log.warning("%s", line)
    return line


def warn_if_empty(client: redis.Redis, config: BusConfig) -> str | None:
    """The line logged when our stream is empty while other badges streams have entries."""
    if int(client.xlen(config.stream)):
        return None
    others = other_streams(client, config.stream)
    if not others:
        return None
    line = (f"stream {config.stream} is empty while {_named(others)} "
            f"{'has' if len(others) == 1 else 'have'} entries; set BADGETUI_BUS_STREAM or "
            "--stream (Tutor uses a random topic prefix)")
    log.warning("%s", line)
    return line


def check_lag(client: redis.Redis, config: BusConfig, lost_before: int) -> int:
    """Warn when the group falls behind the stream's MAXLEN, and loudly when entries were
    trimmed before the group read them (they are lost to it). Returns the entries lost."""
    try:
        groups = client.xinfo_groups(config.stream)
        info = client.xinfo_stream(config.stream)
    except redis.ResponseError:
        return lost_before
    mine = next((g for g in groups if g.get("name") == config.group.encode()), None)
    if mine is None:
        return lost_before
    length = int(info.get("length", 0))
    lag = mine.get("lag")
    if lag is not None:
        # Redis 7 counts the group's unread entries even when they are gone: any beyond
        # the stream's length were trimmed (or deleted) before the group read them.
        lost = max(int(lag) - length, 0)
    else:
        delivered = mine.get("last-delivered-id") or b"0-0"
        first = info.get("first-entry")
        behind = bool(first) and (0, 0) < id_key(delivered) < id_key(first[0])
        lost = 1 if behind else 0
    if lost > lost_before:
        log.error("ENTRIES LOST: stream %s was trimmed past what group %s had read "
                  "(%s entries); raise MAXLEN or add consumers", config.stream,
                  config.group, lost if lag is not None else "some")
    lag = length if lag is None else int(lag)
    if lag >= 0.8 * config.maxlen:
        log.warning("group %s is %d entries behind on %s (MAXLEN ~ %d): entries will be "
                    "trimmed before they are read", config.group, lag, config.stream,
                    config.maxlen)
    return lost


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _before(entry_id: str) -> str:
    """The stream id just before `entry_id` (a group created there delivers it next)."""
    ms, _, seq = entry_id.partition("-")
    if int(seq or 0) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-18446744073709551615" if int(ms) > 0 else "0"


def group_start(client: redis.Redis, config: BusConfig) -> str:
    """Where a new group starts. `group:NAME` takes over from another consumer group (Open edX
    Credentials' after a migration): just before its oldest pending entry (delivered to it but
    perhaps never processed), else at its last delivered id, so no event is missed; one
    processed twice (pending, not acked) changes nothing a migration imported."""
    start = config.start
    if not start.startswith("group:"):
        return start
    name = start.removeprefix("group:")
    try:
        groups = {_text(g["name"]): g for g in client.xinfo_groups(config.stream)}
    except redis.ResponseError:
        groups = {}
    if config.group in groups:
        return start  # ours exists: its position is kept, nothing to resolve
    if name not in groups:
        known = ", ".join(sorted(groups)) or "none"
        raise ValueError(f"--start {start}: stream {config.stream} has no consumer group "
                         f"{name} (its groups: {known})")
    pending = client.xpending(config.stream, name)
    if pending.get("pending"):
        oldest = _text(pending["min"])
        log.info("group %s has %d pending entries: starting before the oldest, %s", name,
                 pending["pending"], oldest)
        return _before(oldest)
    return _text(groups[name]["last-delivered-id"])
