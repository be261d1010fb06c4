"""The Open edX event bus on Redis Streams (openedx-events.md §7): consumer and publisher.

The consumer differs from upstream's on purpose (§7.2): its own group, whose position is kept
across restarts; an entry is acknowledged only after the database commit that recorded it, so a
crash redelivers it and deduplication by the metadata `id` makes that harmless; a failing entry
is retried with backoff and then dead-lettered, and a malformed one is dead-lettered at once,
so one poison entry never stops the stream. Entries become the same envelope a JSON Lines file
holds and go through the same `IntakeService`: one way in for events.

The publisher drains the outgoing-events table (a transactional outbox): rows are written to the
stream after the transaction that made them committed, keep their UUID as `id`, and are marked
published only after `XADD` succeeded, so a crash re-publishes with the same id.

No SIGALRM and short BLOCK times: both run in any thread and stop within `bus_block` seconds
of `stop` being set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import redis
from peewee import InterfaceError, OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from badgetui.domain import avro
from badgetui.domain.events import EVENT_SPECS, OUTCOMES, Event
from badgetui.services.common import Clock, current_database, iso, to_db
from badgetui.services.delivery import DeliveryService
from badgetui.services.intake import IntakeService
from badgetui.services.processing import BatchResult
from badgetui.settings import Settings
from badgetui.store.models import OutgoingEvent

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


# -- entries ----------------------------------------------------------------------------------
class MalformedEntry(ValueError):
    """The entry cannot be an event: it goes to the dead-letter stream at once."""


def _text(fields: dict[bytes, bytes], name: str) -> str:
    raw = fields.get(name.encode())
    if raw is None:
        raise MalformedEntry(f"field {name} is missing")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEntry(f"field {name} is not valid UTF-8") from None


def entry_type(fields: dict[bytes, bytes]) -> str:
    event_type = _text(fields, "type")
    if not event_type:
        raise MalformedEntry("field type is empty")
    return event_type


def utc_time(text: str) -> datetime:
    """The entry's `time`: ISO-8601 in UTC (`+00:00` or `Z`), as upstream consumers demand."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEntry(f"time {text!r} is not ISO-8601") from None
    offset = moment.utcoffset()
    if offset is None:
        raise MalformedEntry(f"time {text!r} has no offset")
    if offset.total_seconds() != 0:
        raise MalformedEntry(f"time {text!r} is not UTC")
    return moment


def entry_envelope(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The JSON envelope intake reads (formats.md, openedx-events.md §5) from a stream entry:
    `id = metadata.id`, `event_type = type`, `time = metadata.time`, `data` the decoded Avro."""
    meta = {name: _text(fields, name) for name in FIELDS[:-1]}
    if not meta["id"].strip():
        raise MalformedEntry("field id is empty")
    utc_time(meta["time"])
    raw = fields.get(b"event_data")
    if raw is None:
        raise MalformedEntry("field event_data is missing")
    event_type = entry_type(fields)
    if not avro.has_schema(event_type):
        raise MalformedEntry(f"no Avro schema for {event_type}")
    try:
        data = avro.decode(event_type, raw)
    except avro.AvroDecodeError as exc:
        raise MalformedEntry(f"event_data: {exc}") from None
    meta["event_type"] = meta.pop("type")
    return {"metadata": meta, "data": data}


def outgoing_fields(row: OutgoingEvent, host: str) -> dict[str, bytes]:
    """The eight fields of §7.3 for one outbox row, `event_data` encoded per §6."""
    data = {EVENT_SPECS[row.event_type].data_key: json.loads(row.payload)}
    return {
        "type": row.event_type.encode(),
        "id": row.uuid.encode(),
        "source": SOURCE.encode(),
        "time": (iso(row.time) or "").encode(),
        "minorversion": b"0",
        "sourcehost": host.encode(),
        "sourcelib": SOURCELIB.encode(),
        "event_data": avro.encode(row.event_type, data),
    }


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


# -- the consumer ----------------------------------------------------------------------------
@dataclass(slots=True)
class _Entry:
    id: bytes
    fields: dict[bytes, bytes]
    attempts: int = 0
    due: float = 0.0
    error: str = ""


@dataclass(slots=True)
class ConsumerStats:
    counts: Counter[str] = field(default_factory=Counter)
    awarded: int = 0
    revoked: int = 0
    acked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    published: int = 0
    reconnects: int = 0

    def add(self, result: BatchResult) -> None:
        self.counts.update(result.counts)
        self.awarded += result.awarded
        self.revoked += result.revoked

    def as_dict(self) -> dict[str, int]:
        out = {name: self.counts.get(name, 0) for name in OUTCOMES}
        out.update(awarded=self.awarded, revoked=self.revoked, acked=self.acked,
                   dead_lettered=self.dead_lettered, retried=self.retried,
                   published=self.published, reconnects=self.reconnects)
        return out


class BusConsumer:
    """Reads badgetui's consumer group until `stop` is set (or, with `drain`, until the stream
    is read to its end and nothing waits for a retry)."""

    def __init__(
        self,
        intake: IntakeService,
        config: BusConfig,
        clock: Clock,
        *,
        client: redis.Redis | None = None,
        stop: threading.Event | None = None,
        publisher: BusPublisher | None = None,
        drain: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.intake = intake
        self.config = config
        self.clock = clock
        self.client = client or connect(config.url, block=config.block)
        self.stop = stop or threading.Event()
        self.publisher = publisher
        self.drain = drain
        self.monotonic = monotonic
        self.stats = ConsumerStats()
        self.source = f"redis:{config.stream}"
        self._consumer_b = config.consumer.encode()
        self._retries: dict[bytes, _Entry] = {}
        self._ready = False
        self._phase = "pending"
        self._cursor: bytes = b"0"
        self._next_claim = 0.0
        self._next_lag = 0.0
        self._recreate = False
        self._db_failures = 0
        self._db_wait_until = 0.0
        self._lost = 0
        self._publish_due = 0.0

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> ConsumerStats:
        failures = 0
        while not self.stop.is_set():
            try:
                if not self._ready:
                    self._setup()
                if not self._step():
                    break
                failures = 0
            except REDIS_TRANSIENT as exc:
                self._ready = False
                delay = min(0.5 * 2**failures, MAX_BACKOFF)
                failures += 1
                self.stats.reconnects += 1
                log.warning("redis: %s; reconnecting in %.1f s", exc or type(exc).__name__,
                            delay)
                self.stop.wait(delay)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream or the group vanished (Redis restarted without persistence, or
                # an operator removed it): recreate it and take whatever the stream holds.
                log.warning("redis: %s; recreating group %s", exc, self.config.group)
                self._ready = False
                self._recreate = True
        return self.stats

    def _setup(self) -> None:
        start = "0" if self._recreate else self.config.start
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id=start,
                                      mkstream=True)
            log.info("created group %s on %s at %s", self.config.group, self.config.stream,
                     start)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            # The group exists: its position is the operator's, never ours to move.
        self._recreate = False
        self._ready = True
        self._phase = "pending"
        self._cursor = b"0"
        self._next_claim = 0.0

    def _step(self) -> bool:
        """One read (or retry round); False once a drain is complete."""
        now = self.monotonic()
        due = [e for e in self._retries.values() if e.due <= now]
        if due:
            self._retry(due)
            return True
        if self._db_wait_until > now:
            self.stop.wait(min(self._db_wait_until - now, self.config.block))
            return True
        if self._phase == "pending":
            # Our own entries first: delivered to this consumer name but never acknowledged.
            entries = self._read(self._cursor, block=None)
            if not entries:
                self._phase = "new"
                return True
            self._cursor = entries[-1].id
            self._handle([e for e in entries if e.id not in self._retries])
            return True
        if now >= self._next_claim:
            self._claim()
            self._next_claim = self.monotonic() + self.config.claim_timeout
            return True
        if now >= self._next_lag:
            self._check_lag()
            self._next_lag = now + self.config.lag_interval
        block = self.config.block
        if self._retries:
            block = min(block, min(e.due for e in self._retries.values()) - now)
        entries = self._read(b">", block=max(int(block * 1000), 1))
        if entries:
            self._handle(entries)
            return True
        self._publish(idle=True)
        return not (self.drain and not self._retries)

    def _read(self, start: bytes, *, block: int | None) -> list[_Entry]:
        reply = self.client.xreadgroup(self.config.group, self.config.consumer,
                                       {self.config.stream: start}, count=self.config.batch,
                                       block=block)
        if not reply:
            return []
        return [_Entry(eid, fields or {}) for eid, fields in reply[0][1]]

    def _claim(self) -> None:
        """Take over entries idle past the claim timeout (their consumer died)."""
        start: bytes | str = "0-0"
        idle_ms = int(self.config.claim_timeout * 1000)
        while not self.stop.is_set():
            reply = self.client.xautoclaim(self.config.stream, self.config.group,
                                           self.config.consumer, idle_ms, start,
                                           count=self.config.batch)
            nxt, claimed = reply[0], reply[1]
            entries = [_Entry(eid, fields or {}) for eid, fields in claimed
                       if eid not in self._retries]
            if entries:
                log.info("took over %d idle entries", len(entries))
                self._handle(entries)
            if _id_key(nxt) == (0, 0):
                break
            start = nxt

    def _retry(self, due: list[_Entry]) -> None:
        """Retry entries still ours; another consumer may have claimed one meanwhile."""
        pipe = self.client.pipeline(transaction=False)
        for entry in due:
            pipe.xpending_range(self.config.stream, self.config.group, entry.id, entry.id, 1)
        mine: list[_Entry] = []
        for entry, rows in zip(due, pipe.execute(), strict=True):
            if rows and rows[0]["consumer"] == self._consumer_b:
                mine.append(entry)
            else:
                self._retries.pop(entry.id, None)
                log.info("entry %s is no longer pending for us", entry.id.decode())
        if not mine:
            return
        # Reset their idle time so nobody claims them while we work on them.
        self.client.xclaim(self.config.stream, self.config.group, self.config.consumer, 0,
                           [e.id for e in mine], justid=True)
        self.stats.retried += len(mine)
        self._handle(mine)

    # -- one batch -------------------------------------------------------------------------
    def _handle(self, entries: list[_Entry]) -> None:
        """Record the entries in one transaction, then acknowledge what was committed."""
        events: list[Event] = []
        owners: list[_Entry] = []
        malformed: dict[bytes, str] = {}
        gone: list[bytes] = []
        for entry in entries:
            if not entry.fields:
                log.warning("entry %s was deleted from the stream before it was processed",
                            entry.id.decode())
                gone.append(entry.id)
                continue
            try:
                event = self._event(entry)
            except MalformedEntry as exc:
                malformed[entry.id] = str(exc)
                event = self._rejected(entry, str(exc))
            events.append(event)
            owners.append(entry)
        before = self.stats.awarded + self.stats.revoked
        done, failed = self._ingest(events, owners)
        ack = gone + [e.id for e in done if e.id not in malformed]
        if ack:
            self.client.xack(self.config.stream, self.config.group, *ack)
            self.stats.acked += len(ack)
        for entry in done:
            self._retries.pop(entry.id, None)
        for entry in owners:
            reason = malformed.get(entry.id)
            if reason is not None:
                entry.attempts += 1
                self._dead_letter(entry, f"malformed: {reason}")
        for entry, exc in failed:
            if entry.id not in malformed:
                self._failed(entry, exc)
        if self.stats.awarded + self.stats.revoked != before:
            self._publish(idle=False)

    def _event(self, entry: _Entry) -> Event:
        event_type = entry_type(entry.fields)
        if event_type not in self.intake.configured:
            # Acknowledged and recorded as ignored, without decoding (badge events included).
            raw_id = entry.fields.get(b"id")
            meta = {"id": raw_id.decode("utf-8", "replace") if raw_id else None,
                    "event_type": event_type}
            return self.intake.parse_object({"metadata": meta, "data": None})
        return self.intake.parse_object(entry_envelope(entry.fields))

    def _rejected(self, entry: _Entry, reason: str) -> Event:
        """The intake-log record of a malformed entry (the entry itself goes to the DLQ)."""
        shown = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                 for k, v in entry.fields.items() if k != b"event_data"}
        raw_id = shown.get("id") or None
        return Event(
            raw_id, shown.get("type") or None, None, None, "rejected",
            f"malformed bus entry {entry.id.decode()}: {reason} (moved to "
            f"{self.config.dlq_stream})",
            raw=json.dumps({"stream_id": entry.id.decode(), **shown})[:2000],
        )

    def _ingest(
        self, events: list[Event], owners: list[_Entry]
    ) -> tuple[list[_Entry], list[tuple[_Entry, Exception]]]:
        """(committed entries, failed entries with their error). A failed batch is retried one
        entry at a time, so one bad entry does not hold back the others."""
        if not events:
            return [], []
        try:
            result: BatchResult | None = self.intake.ingest_batch(events, self.source)
        except DB_TRANSIENT as exc:
            return [], [(o, exc) for o in owners]
        except Exception as exc:
            if len(events) == 1:
                return [], [(owners[0], exc)]
            log.debug("batch failed; retrying its entries one by one", exc_info=True)
            result = None
        if result is not None:
            self.stats.add(result)
            if not result.errors:
                self._db_failures = 0
                return list(owners), []
            bad = {id(e) for e, _ in result.errors}
            done = [o for e, o in zip(events, owners, strict=True) if id(e) not in bad]
            again = [(e, o) for e, o in zip(events, owners, strict=True) if id(e) in bad]
        else:
            done, again = [], list(zip(events, owners, strict=True))
        failed: list[tuple[_Entry, Exception]] = []
        for event, owner in again:
            if failed and isinstance(failed[-1][1], DB_TRANSIENT):
                failed.append((owner, failed[-1][1]))  # the database is away: spare the rest
                continue
            try:
                one = self.intake.ingest_batch([event], self.source)
            except Exception as exc:
                failed.append((owner, exc))
                continue
            self.stats.add(one)
            done.append(owner)
        if not failed:
            self._db_failures = 0
        return done, failed

    def _failed(self, entry: _Entry, exc: Exception) -> None:
        """Leave the entry pending and retry it later; after the last attempt, dead-letter it."""
        now = self.monotonic()
        entry.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, DB_TRANSIENT):
            # Not the entry's fault: wait for the database without using up its attempts.
            # One backoff step per failed round, however many entries were in it.
            if self._db_wait_until <= now:
                self._db_failures += 1
                delay = min(self.config.retry_delay * 2 ** min(self._db_failures - 1, 10),
                            MAX_BACKOFF)
                log.warning("database: %s; retrying in %.1f s", exc, delay)
                self._db_wait_until = now + delay
                _close_quietly()
            entry.due = self._db_wait_until
            self._retries[entry.id] = entry
            return
        entry.attempts += 1
        if entry.attempts >= self.config.max_attempts:
            self._retries.pop(entry.id, None)
            self._dead_letter(entry, f"processing failed {entry.attempts} times: {entry.error}")
            return
        delay = min(self.config.retry_delay * 2 ** (entry.attempts - 1), MAX_BACKOFF)
        log.warning("entry %s failed (attempt %d of %d): %s; retrying in %.1f s",
                    entry.id.decode(), entry.attempts, self.config.max_attempts, entry.error,
                    delay)
        entry.due = now + delay
        self._retries[entry.id] = entry

    def _dead_letter(self, entry: _Entry, reason: str) -> None:
        """One MULTI: the entry (all its fields, plus why) to the DLQ, and its XACK."""
        fields: dict[bytes, bytes] = dict(entry.fields)
        fields.update({
            b"dlq_reason": reason.encode(),
            b"dlq_stream_id": entry.id,
            b"dlq_attempts": str(entry.attempts).encode(),
            b"dlq_group": self.config.group.encode(),
            b"dlq_consumer": self._consumer_b,
            b"dlq_time": (iso(self.clock()) or "").encode(),
        })
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.config.dlq_stream, fields)
        pipe.xack(self.config.stream, self.config.group, entry.id)
        pipe.execute()
        self.stats.dead_lettered += 1
        log.error("entry %s moved to %s: %s", entry.id.decode(), self.config.dlq_stream, reason)

    # -- side duties -----------------------------------------------------------------------
    def _publish(self, *, idle: bool) -> None:
        """Publish the outbox: after batches that awarded or revoked, and at most once a
        second when idle (rows written by other processes, e.g. a file ingest)."""
        if self.publisher is None:
            return
        now = self.monotonic()
        if idle and now < self._publish_due:
            return
        self._publish_due = now + 1.0
        try:
            self.stats.published += self.publisher.publish_pending()
        except DB_TRANSIENT as exc:
            log.warning("publish: database: %s", exc)
            _close_quietly()

    def _check_lag(self) -> None:
        """Warn when the group falls behind the stream's MAXLEN, and loudly when entries were
        trimmed before the group read them (they are lost to it)."""
        try:
            groups = self.client.xinfo_groups(self.config.stream)
            info = self.client.xinfo_stream(self.config.stream)
        except redis.ResponseError:
            return
        mine = next((g for g in groups if g.get("name") == self.config.group.encode()), None)
        if mine is None:
            return
        length = int(info.get("length", 0))
        lag = mine.get("lag")
        if lag is not None:
            # Redis 7 counts the group's unread entries even when they are gone: any beyond
            # the stream's length were trimmed (or deleted) before the group read them.
            lost = max(int(lag) - length, 0)
        else:
            delivered = mine.get("last-delivered-id") or b"0-0"
            first = info.get("first-entry")
            behind = bool(first) and (0, 0) < _id_key(delivered) < _id_key(first[0])
            lost = 1 if behind else 0
        if lost > self._lost:
            log.error("ENTRIES LOST: stream %s was trimmed past what group %s had read "
                      "(%s entries); raise MAXLEN or add consumers", self.config.stream,
                      self.config.group, lost if lag is not None else "some")
        self._lost = lost
        lag = length if lag is None else int(lag)
        if lag >= 0.8 * self.config.maxlen:
            log.warning("group %s is %d entries behind on %s (MAXLEN ~ %d): entries will be "
                        "trimmed before they are read", self.config.group, lag,
                        self.config.stream, self.config.maxlen)


def _close_quietly() -> None:
    """Drop a broken database connection so the next statement opens a fresh one."""
    try:
        current_database().close()
    except Exception:  # closing a dead connection may itself fail
        log.debug("closing the database connection failed", exc_info=True)


# -- the publisher ---------------------------------------------------------------------------
class BusPublisher:
    """Writes unpublished outbox rows to the stream, oldest first."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        clock: Clock,
        *,
        maxlen: int = 10_000,
        host: str | None = None,
        batch: int = 500,
    ) -> None:
        self.client = client
        self.stream = stream
        self.clock = clock
        self.maxlen = maxlen
        self.host = host or socket.gethostname()
        self.batch = batch
        self._broken: set[int] = set()

    def run(self, stop: threading.Event, interval: float = 1.0) -> int:
        """Publish until `stop` is set, polling the outbox every `interval` seconds; Redis and
        database outages are waited out. Returns how many entries were written."""
        total = 0
        failures = 0
        while not stop.is_set():
            try:
                total += self.publish_pending()
                failures = 0
            except (*REDIS_TRANSIENT, *DB_TRANSIENT) as exc:
                delay = min(0.5 * 2**failures, MAX_BACKOFF)
                failures += 1
                log.warning("publish: %s; retrying in %.1f s", exc, delay)
                if isinstance(exc, DB_TRANSIENT):
                    _close_quietly()
                stop.wait(delay)
                continue
            stop.wait(interval)
        return total

    def publish_pending(self) -> int:
        """Publish every row not yet published; returns how many were written."""
        total = 0
        while True:
            written, read = self._publish_batch()
            total += written
            if read < self.batch:
                return total

    def _publish_batch(self) -> tuple[int, int]:
        database = current_database()
        # One transaction per batch: on PostgreSQL the rows are locked (others skip them), on
        # SQLite the write lock is held, so two publishers never write the same row twice.
        with database.atomic():
            query = (OutgoingEvent.select()
                     .where(OutgoingEvent.published_at.is_null())
                     .order_by(OutgoingEvent.id).limit(self.batch))
            if self._broken:
                query = query.where(OutgoingEvent.id.not_in(sorted(self._broken)))
            if database.for_update:
                query = query.for_update(skip_locked=True)
            rows = list(query)
            if not rows:
                return 0, 0
            pipe = self.client.pipeline(transaction=False)
            sent: list[int] = []
            for row in rows:
                try:
                    fields = outgoing_fields(row, self.host)
                except Exception as exc:  # a row that cannot be encoded never will be
                    self._broken.add(row.id)
                    log.error("outgoing event %s cannot be published: %s", row.uuid, exc)
                    continue
                pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
                sent.append(row.id)
            if sent:
                pipe.execute()
                OutgoingEvent.update(published_at=to_db(self.clock())).where(
                    OutgoingEvent.id.in_(sent)).execute()
        return len(sent), len(rows)


# -- delivery beside a consumer -------------------------------------------------------------
class BackgroundDelivery:
    """The delivery worker in a thread of its own (its own event loop and database
    connection), so provider latency never slows the stream down."""

    def __init__(self, delivery: DeliveryService) -> None:
        self.delivery = delivery
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._main, name="badgetui-delivery",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float) -> None:
        """Wait (up to `timeout` s) for the queue to empty, then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            try:
                if self.delivery.pending() == 0:
                    break
            except DB_TRANSIENT:
                _close_quietly()
            time.sleep(0.2)
        self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            while not self._halt.is_set():
                try:
                    asyncio.run(self._run())
                except Exception:
                    log.exception("delivery worker failed; restarting in 5 s")
                    _close_quietly()
                    self._halt.wait(5.0)
        finally:
            _close_quietly()

    async def _run(self) -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            while not self._halt.is_set():
                await asyncio.sleep(0.2)
            stop.set()

        watcher = asyncio.create_task(watch())
        try:
            await self.delivery.run(until_idle=False, stop=stop)
        finally:
            watcher.cancel()
