"""The Open edX event bus on Redis Streams (openedx-events.md §7): the consumer.

The consumer differs from upstream's on purpose (§7.2): its own group, whose position is kept
across restarts; an entry is acknowledged only after the database commit that recorded it, so a
crash redelivers it and deduplication by the metadata `id` makes that harmless; a failing entry
is retried with backoff and then dead-lettered, and a malformed one is dead-lettered at once,
so one poison entry never stops the stream. Entries become the same envelope a JSON Lines file
holds and go through the same `IntakeService`: one way in for events.

Several consumers in one group give the result of one: penalties make the order of a learner's
events matter, so entries are committed in stream order whoever holds them (a watermark kept in
the database, see `BusConsumer`). They take turns on the stream: more consumers buy
availability (a dead one's entries are taken over), not throughput.

No SIGALRM and short BLOCK times: it runs in any thread and stops within `bus_block` seconds
of `stop` being set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis
from peewee import DatabaseError

from badgetui.domain.events import Event
from badgetui.services.bus import diagnostics
from badgetui.services.bus.config import (
    DB_TRANSIENT,
    MAX_BACKOFF,
    REDIS_TRANSIENT,
    BusConfig,
    close_quietly,
    connect,
    log,
)
from badgetui.services.bus.dlq import move_to_dlq
from badgetui.services.bus.entries import (
    KNOWN_MINOR,
    ORIGIN,
    MalformedEntry,
    StreamId,
    entry_event,
    id_key,
    id_text,
)
from badgetui.services.bus.publisher import BusPublisher
from badgetui.services.bus.stats import ConsumerStats
from badgetui.services.bus.watermark import (
    lock_watermark,
    read_watermark,
    watermark_keys,
    write_watermark,
)
from badgetui.services.common import Clock, in_transaction
from badgetui.services.intake import IntakeService
from badgetui.services.processing import BatchResult

#: How often entries waiting for an earlier one (another consumer's batch) look again.
GATE_POLL: Final = 0.02
#: On SIGINT/SIGTERM, how long entries in hand may wait for an earlier one to be committed.
STOP_GRACE: Final = 10.0



@dataclass(slots=True)
class _Entry:
    id: bytes
    fields: dict[bytes, bytes]
    key: StreamId = ORIGIN
    attempts: int = 0
    due: float = 0.0
    error: str = ""
    #: Processed before and failed (or the database was away): counted as a retry.
    retry: bool = False
    #: When this consumer last claimed it (delivery, claim, refresh): others claim it once idle.
    taken: float = 0.0
    #: Which `>` read handed it out (0: another way): one read hands out consecutive entries.
    read: int = 0
    #: The parsed event; None for an entry deleted from the stream before it was processed.
    event: Event | None = None
    malformed: str | None = None

    def __post_init__(self) -> None:
        self.key = id_key(self.id)


class BusConsumer:
    """Reads badgetui's consumer group until `stop` is set (or, with `drain`, until the stream
    is read to its end and nothing waits for a retry).

    Entries are committed in stream order, whichever consumer of the group holds them: several
    consumers give the result of one, penalties and revocations included. The order is kept by
    a watermark per (stream, group) in the database, written in the transaction that records a
    batch: every entry up to it is resolved. A batch goes in once nothing between the watermark
    and its first entry is still pending in the group (held by a consumer that has not committed
    it); otherwise it waits, polling, and takes over the entries it waits for once their
    consumer has left them idle past the claim timeout (it died). Entries at or below the
    watermark (redelivered after a commit, retried after a failure) go in at once, where
    deduplication makes a redelivery a recorded duplicate.

    So consumers take turns on one stream: several of them buy availability (a dead consumer's
    entries are taken over, a rolling restart never stops the stream), not throughput; only the
    reading and decoding of one batch overlaps the commit of the one before.
    """

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
        diagnostics.refuse_without_schema(intake.configured)
        self.stats = ConsumerStats()
        self.source = f"redis:{config.stream}"
        self._consumer_b = config.consumer.encode()
        self._keys = watermark_keys(config.stream, config.group)
        #: Every entry in hand: read, claimed or waiting for a retry, not yet acknowledged.
        self._held: dict[bytes, _Entry] = {}
        #: The watermark as last read or written (reads may lag: that only makes us wait).
        self._mark: StreamId = ORIGIN
        self._mark_checked = False
        #: The pending entry the gate waits for (XPENDING's row), if any.
        self._blocker: dict[str, Any] | None = None
        self._ready = False
        self._phase = "pending"
        self._cursor: bytes = b"0"
        self._next_claim = 0.0
        self._next_lag = 0.0
        self._reads = 0
        self._recreate = False
        self._db_failures = 0
        self._db_wait_until = 0.0
        self._lost = 0
        self._publish_due = 0.0
        #: Whether the stream has been checked for being the wrong one (diagnostics).
        self._stream_checked = False
        #: (event type, minor version) pairs newer than ours already logged.
        self._newer_seen: set[tuple[str, int]] = set()

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
        if self._ready:
            self._finish()
        return self.stats

    def _setup(self) -> None:
        start = "0" if self._recreate else diagnostics.group_start(self.client, self.config)
        created = not self._stream_checked and not self.client.exists(self.config.stream)
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id=start,
                                      mkstream=True)
            log.info("created group %s on %s at %s", self.config.group, self.config.stream,
                     start)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            # The group exists: its position is the operator's, never ours to move.
        if created:
            diagnostics.warn_created(self.client, self.config)
            self._stream_checked = True
        self._recreate = False
        self._ready = True
        self._phase = "pending"
        self._cursor = b"0"
        self._next_claim = 0.0
        self._mark_checked = False  # checked against the group before the next commit

    def _step(self) -> bool:
        """One read, retry round or wait; False once a drain is complete."""
        now = self.monotonic()
        if self._db_wait_until > now:
            self.stop.wait(min(self._db_wait_until - now, self.config.block))
            return True
        self._touch(now)
        if self._phase == "pending":
            # Our own entries first: delivered to this consumer name but never acknowledged.
            entries = self._read(self._cursor, block=None)
            if not entries:
                self._phase = "new"
                return True
            self._cursor = entries[-1].id
            self._take(entries)
            self._advance()
            return True
        if now >= self._next_claim:
            self._claim()
            self._next_claim = self.monotonic() + self.config.claim_timeout
            return True
        if now >= self._next_lag:
            self._lost = diagnostics.check_lag(self.client, self.config, self._lost)
            self._next_lag = now + self.config.lag_interval
        if self._held:
            moved = self._advance()
            if self._waiting():
                # Nothing new is read while entries in hand wait for earlier ones.
                if not moved:
                    self._wait_for_gate()
                return True
        block = self.config.block
        if self._held:
            block = min(block, min(e.due for e in self._held.values()) - self.monotonic())
        entries = self._read(b">", block=max(int(block * 1000), 1))
        if entries:
            self._reads += 1
            for entry in entries:
                entry.read = self._reads
            self._take(entries)
            self._advance()
            return True
        if not self._stream_checked:
            self._stream_checked = True
            diagnostics.warn_if_empty(self.client, self.config)
        self._publish(idle=True)
        return not (self.drain and not self._held)

    def _finish(self) -> None:
        """On stop, entries in hand that wait for another consumer's earlier entry (that
        consumer may be finishing its own batch) get STOP_GRACE seconds; what is left stays
        pending, for this consumer's restart or another consumer's claim, like entries waiting
        for a retry or for the database."""
        deadline = self.monotonic() + STOP_GRACE
        try:
            while self._waiting() and self.monotonic() < deadline:
                if self._advance():
                    continue
                if self._blocker is None or self._blocker["consumer"] == self._consumer_b:
                    break  # nothing another consumer will resolve for us
                time.sleep(GATE_POLL)
        except (redis.RedisError, *DB_TRANSIENT) as exc:
            log.warning("stopping: %s", exc)
        if self._held:
            log.info("stopping with %d entries in hand; they stay pending", len(self._held))

    def _read(self, start: bytes, *, block: int | None) -> list[_Entry]:
        reply = self.client.xreadgroup(self.config.group, self.config.consumer,
                                       {self.config.stream: start}, count=self.config.batch,
                                       block=block)
        if not reply:
            return []
        return [_Entry(eid, fields or {}) for eid, fields in reply[0][1]]

    def _claim(self, start: bytes | str = "0-0") -> None:
        """Take over entries idle past the claim timeout (their consumer died)."""
        idle_ms = int(self.config.claim_timeout * 1000)
        while not self.stop.is_set():
            reply = self.client.xautoclaim(self.config.stream, self.config.group,
                                           self.config.consumer, idle_ms, start,
                                           count=self.config.batch)
            nxt, claimed = reply[0], reply[1]
            entries = [_Entry(eid, fields or {}) for eid, fields in claimed]
            fresh = [e for e in entries if e.id not in self._held]
            if fresh:
                log.info("took over %d idle entries", len(fresh))
            if entries:
                self._take(entries)
                self._advance()
            if id_key(nxt) == ORIGIN:
                break
            start = nxt

    # -- entries in hand ----------------------------------------------------------------------
    def _take(self, entries: list[_Entry]) -> None:
        """Entries read or claimed, parsed now (before their turn comes)."""
        now = self.monotonic()
        for entry in entries:
            held = self._held.get(entry.id)
            if held is not None:  # already in hand (a re-read after a reconnect, a claim)
                held.taken = now
                continue
            entry.taken = now
            if entry.fields:
                try:
                    entry.event = self._event(entry)
                except MalformedEntry as exc:
                    entry.malformed = str(exc)
                    entry.event = self._rejected(entry, str(exc))
                except Exception as exc:  # a decoder bug must not stop the stream: malformed
                    entry.malformed = f"cannot be read ({exc!r})"[:300]
                    entry.event = self._rejected(entry, entry.malformed)
            self._held[entry.id] = entry

    def _waiting(self) -> bool:
        """Entries in hand beyond the watermark: nothing new is read until they are resolved."""
        return any(e.key > self._mark for e in self._held.values())

    def _touch(self, now: float) -> None:
        """Keep entries waiting in hand from looking idle to the other consumers' claims."""
        stale = [e for e in self._held.values()
                 if now - e.taken >= self.config.claim_timeout / 3]
        if stale:
            self._refresh(stale)

    def _refresh(self, entries: list[_Entry]) -> list[_Entry]:
        """The entries still pending for this consumer, their idle time reset; the others were
        claimed by another consumer meanwhile and leave our hands."""
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            pipe.xpending_range(self.config.stream, self.config.group, entry.id, entry.id, 1)
        mine: list[_Entry] = []
        for entry, rows in zip(entries, pipe.execute(), strict=True):
            if rows and rows[0]["consumer"] == self._consumer_b:
                mine.append(entry)
            else:
                self._held.pop(entry.id, None)
                log.info("entry %s is no longer pending for us", entry.id.decode())
        if mine:
            self.client.xclaim(self.config.stream, self.config.group, self.config.consumer, 0,
                               [e.id for e in mine], justid=True)
            now = self.monotonic()
            for entry in mine:
                entry.taken = now
        return mine

    def _wait_for_gate(self) -> None:
        """Entries in hand wait for an earlier entry (or for their own retry): take the earlier
        entry over when its consumer left it idle past the claim timeout, else poll."""
        blocker, started = self._blocker, self.monotonic()
        if blocker is not None:
            if blocker["consumer"] == self._consumer_b:
                # Ours, yet not in hand (read before a reconnect): read our pending again.
                self._phase, self._cursor = "pending", b"0"
                return
            if blocker["time_since_delivered"] >= self.config.claim_timeout * 1000:
                log.info("entry %s of consumer %s is idle: taking over",
                         blocker["message_id"].decode(), blocker["consumer"].decode())
                self._claim(blocker["message_id"])
                return
            self.stop.wait(GATE_POLL)
            self.stats.waited += self.monotonic() - started
            return
        due = min(e.due for e in self._held.values() if e.key > self._mark)
        self.stop.wait(min(max(due - started, 0.0), self.config.block) or GATE_POLL)

    # -- the gate and the commit -------------------------------------------------------------
    def _advance(self) -> bool:
        """Commit the entries in hand that stream order lets through now; True if any were
        (or if some left our hands, so that the gate must be looked at again)."""
        self._blocker = None
        now = self.monotonic()
        if not any(e.due <= now for e in self._held.values()):
            return False
        try:
            if not self._mark_checked:
                self._check_watermark()
            self._mark = read_watermark(self._keys) or ORIGIN
        except DB_TRANSIENT as exc:
            self._db_trouble(exc, list(self._held.values()))
            return False
        ready = self._gate(now)
        if not ready:
            return False
        retries = [e for e in ready if e.retry]
        if retries and len(self._refresh(retries)) < len(retries):
            return True  # another consumer claimed some meanwhile: it commits them
        self._commit(ready)
        return True

    def _gate(self, now: float) -> list[_Entry]:
        """The entries in hand that may be committed now: those at or below the watermark, and
        the due ones above it that nothing pending in the group precedes, except our own.

        Checked before the watermark is locked: once nothing before an entry is pending above
        the watermark, that stays so (entries are handed out in order, the watermark only
        rises, and an entry leaves the pending list only when acknowledged after its commit or
        dead-lettered). The lock makes two commits of the same entries (a claim racing its
        slow holder) take turns, so that the second records duplicates."""
        mark = self._mark
        held = sorted(self._held.values(), key=lambda e: e.key)
        ready = [e for e in held if e.key <= mark and e.due <= now]
        above = [e for e in held if e.key > mark]
        run: list[_Entry] = []
        for entry in above:
            if entry.due > now:
                break  # our own earlier entry waits for its retry
            run.append(entry)
        if not run:
            return ready
        stream, group = self.config.stream, self.config.group
        first = run[0].id.decode()
        rows = self.client.xpending_range(stream, group, f"({id_text(mark)}", f"({first}", 1)
        if rows:
            self._blocker = rows[0]
            return ready
        if len(run) > 1 and not (run[0].read and all(e.read == run[0].read for e in run)):
            # One `>` read hands out consecutive entries; entries claimed, re-read or read
            # apart need not be: another consumer's pending entry between two of ours cuts
            # the run there.
            rows = self.client.xpending_range(stream, group, first, run[-1].id.decode(),
                                              len(run) + 1)
            foreign = [r["message_id"] for r in rows if r["message_id"] not in self._held]
            if foreign:
                cut = id_key(foreign[0])
                run = [e for e in run if e.key < cut]
        return ready + run

    def _commit(self, entries: list[_Entry]) -> None:
        """Record the entries and move the watermark in one transaction, then acknowledge what
        was committed and dead-letter the malformed ones."""
        entries.sort(key=lambda e: e.key)
        live = [e for e in entries if e.event is not None]
        self.stats.retried += sum(e.retry for e in entries)
        try:
            failed, results, mark = in_transaction(lambda: self._record(live, entries[-1].key))
        except DB_TRANSIENT as exc:
            self._db_trouble(exc, entries)
            return
        except DatabaseError as exc:  # the transaction itself, not one entry: all try again
            log.warning("commit failed: %s", exc)
            for entry in entries:
                self._failed(entry, exc)
            return
        self._mark = mark
        self._db_failures = 0
        for result in results:
            self.stats.add(result)
        failed_ids = {e.id for e, _ in failed}
        for entry, exc in failed:
            if entry.malformed is None:
                self._failed(entry, exc)
        ack = [e.id for e in entries if e.id not in failed_ids and e.malformed is None]
        if ack:
            self.client.xack(self.config.stream, self.config.group, *ack)
            self.stats.acked += len(ack)
            for entry_id in ack:
                self._held.pop(entry_id, None)
        for entry in entries:
            if entry.malformed is not None:
                entry.attempts += 1
                self._dead_letter(entry, f"malformed: {entry.malformed}")
        if any(r.awarded or r.revoked for r in results):
            self._publish(idle=False)

    def _record(
        self, live: list[_Entry], top: StreamId
    ) -> tuple[list[tuple[_Entry, Exception]], list[BatchResult], StreamId]:
        """The transaction: lock the watermark, record the events, move the watermark past the
        batch. A transient database error rolls all of it back."""
        mark = lock_watermark(self._keys)
        failed, results = self._ingest(live)
        if top > mark:
            write_watermark(self._keys, top)
            mark = top
        return failed, results, mark

    def _event(self, entry: _Entry) -> Event:
        return entry_event(self.intake, entry.fields, self._newer)

    def _newer(self, event_type: str, minor: int, extra: int) -> None:
        """Counted always, logged once per type and version."""
        self.stats.newer += 1
        if (event_type, minor) in self._newer_seen:
            return
        self._newer_seen.add((event_type, minor))
        log.warning("%s minor version %d is newer than the %d badgetui knows: read with the "
                    "known fields (%d bytes beyond them ignored in the first entry)",
                    event_type, minor, KNOWN_MINOR, extra)

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
        self, owners: list[_Entry]
    ) -> tuple[list[tuple[_Entry, Exception]], list[BatchResult]]:
        """(failed entries with their error, results) inside the caller's transaction; the
        other entries were recorded. A failed batch is retried one entry at a time, so one bad
        entry does not hold back the others; a transient database error is raised (the caller
        rolls everything back)."""
        if not owners:
            return [], []
        events = [o.event for o in owners if o.event is not None]
        try:
            result: BatchResult | None = self.intake.ingest_batch(events, self.source)
        except DB_TRANSIENT:
            raise
        except Exception as exc:
            if len(events) == 1:
                return [(owners[0], exc)], []
            log.debug("batch failed; retrying its entries one by one", exc_info=True)
            result = None
        results: list[BatchResult] = []
        if result is not None:
            results.append(result)
            bad = {id(e) for e, _ in result.errors}
            again = [(e, o) for e, o in zip(events, owners, strict=True) if id(e) in bad]
        else:
            again = list(zip(events, owners, strict=True))
        failed: list[tuple[_Entry, Exception]] = []
        for event, owner in again:
            try:
                results.append(self.intake.ingest_batch([event], self.source))
            except DB_TRANSIENT:
                raise
            except Exception as exc:
                failed.append((owner, exc))
        return failed, results

    def _check_watermark(self) -> None:
        """Forget a watermark beyond the group's last delivered entry: it belongs to an earlier
        life of the stream or the group (Redis lost them, an operator moved the group back).
        A low watermark only makes consumers wait; a stale high one would let them overtake
        each other."""
        def work() -> StreamId | None:
            mark = lock_watermark(self._keys)
            delivered = self._last_delivered()
            if delivered is None or mark <= delivered:
                return None
            write_watermark(self._keys, ORIGIN)
            return mark

        stale = in_transaction(work)
        if stale is not None:
            log.warning("watermark %s is beyond what group %s was handed: reset",
                        id_text(stale), self.config.group)
        self._mark_checked = True

    def _last_delivered(self) -> StreamId | None:
        try:
            groups = self.client.xinfo_groups(self.config.stream)
        except redis.ResponseError:  # the stream is gone: the next read recreates it
            return None
        for group in groups:
            if group.get("name") == self.config.group.encode():
                return id_key(group.get("last-delivered-id") or b"0-0")
        return None

    def _db_trouble(self, exc: Exception, entries: list[_Entry]) -> None:
        """The database is away: not the entries' fault, they use up no attempts. One backoff
        step per failed round, however many entries were in it."""
        now = self.monotonic()
        if self._db_wait_until <= now:
            self._db_failures += 1
            delay = min(self.config.retry_delay * 2 ** min(self._db_failures - 1, 10),
                        MAX_BACKOFF)
            log.warning("database: %s; retrying in %.1f s", exc, delay)
            self._db_wait_until = now + delay
            close_quietly()
        for entry in entries:
            entry.error = f"{type(exc).__name__}: {exc}"
            entry.due = self._db_wait_until
            entry.retry = True

    def _failed(self, entry: _Entry, exc: Exception) -> None:
        """Keep the entry pending and retry it later; after the last attempt, dead-letter it."""
        now = self.monotonic()
        entry.error = f"{type(exc).__name__}: {exc}"
        entry.attempts += 1
        if entry.attempts >= self.config.max_attempts:
            self._dead_letter(entry, f"processing failed {entry.attempts} times: {entry.error}")
            return
        delay = min(self.config.retry_delay * 2 ** (entry.attempts - 1), MAX_BACKOFF)
        log.warning("entry %s failed (attempt %d of %d): %s; retrying in %.1f s",
                    entry.id.decode(), entry.attempts, self.config.max_attempts, entry.error,
                    delay)
        entry.due = now + delay
        entry.retry = True

    def _dead_letter(self, entry: _Entry, reason: str) -> None:
        """One MULTI: the entry (all its fields, plus why) to the DLQ, and its XACK."""
        move_to_dlq(self.client, self.config, entry.id, entry.fields, reason=reason,
                    attempts=entry.attempts, now=self.clock())
        self._held.pop(entry.id, None)
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
            close_quietly()
