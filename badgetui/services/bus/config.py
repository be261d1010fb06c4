"""Bus settings, the Redis client, and the constants every part of the bus shares."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any, Final

import redis
from peewee import InterfaceError, OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from badgetui.services.common import current_database
from badgetui.settings import Settings

log = logging.getLogger("badgetui.bus")

#: The eight fields of an entry, in upstream's order (§7).
FIELDS: Final = ("type", "id", "source", "time", "minorversion", "sourcehost", "sourcelib",
                 "event_data")
SOURCE: Final = "openedx/badgetui/web"
#: An openedx-events release whose schemas are exactly ours (§7.3).
SOURCELIB: Final = "11.2.0"
#: Redis trouble worth waiting out: reconnect with backoff, never exit (§7.2).
REDIS_TRANSIENT: Final = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
#: Database trouble that is not the entry's fault: it neither counts as an attempt nor
#: dead-letters anything; the entries wait, pending, until the database answers again.
DB_TRANSIENT: Final = (OperationalError, InterfaceError)
MAX_BACKOFF: Final = 30.0


@dataclass(frozen=True, slots=True)
class BusConfig:
    url: str
    stream: str
    group: str
    consumer: str
    start: str = "$"
    claim_timeout: float = 60.0
    max_attempts: int = 3
    dlq_stream: str = ""
    batch: int = 500
    block: float = 1.0
    retry_delay: float = 1.0
    maxlen: int = 10_000
    lag_interval: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> BusConfig:
        """Settings with the command line's overrides (None means "not given")."""
        given = {k: v for k, v in overrides.items() if v is not None}
        stream = given.pop("stream", settings.bus_stream)
        url = given.pop("url", settings.redis_url)
        if not url:
            raise ValueError("no Redis URL: pass --redis URL or set BADGETUI_REDIS_URL")
        values: dict[str, Any] = {
            "url": url,
            "stream": stream,
            "group": settings.bus_group,
            "consumer": settings.bus_consumer or socket.gethostname(),
            "start": settings.bus_start,
            "claim_timeout": settings.bus_claim_timeout,
            "max_attempts": settings.bus_max_attempts,
            "dlq_stream": settings.bus_dlq_stream or f"{stream}-badgetui-dlq",
            "batch": settings.bus_batch,
            "block": settings.bus_block,
            "retry_delay": settings.bus_retry_delay,
            "maxlen": settings.bus_maxlen,
        }
        values.update(given)
        return cls(**values)


def connect(url: str, *, block: float = 1.0) -> redis.Redis:
    """A bytes-mode client (`event_data` is binary, §7) that never retries behind our back:
    the consumer decides what a lost connection means (re-read its pending entries)."""
    return redis.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=block + 10.0,
        socket_connect_timeout=5.0,
        decode_responses=False,
    )



def close_quietly() -> None:
    """Drop a broken database connection so the next statement opens a fresh one."""
    try:
        current_database().close()
    except Exception:  # closing a dead connection may itself fail
        log.debug("closing the database connection failed", exc_info=True)

