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
