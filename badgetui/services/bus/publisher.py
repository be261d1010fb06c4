"""The publisher: drains the outgoing-events table (a transactional outbox) to the stream.

Rows are written after the transaction that made them committed, keep their UUID as `id`, and
are marked published only after `XADD` succeeded, so a crash re-publishes with the same id.
"""

from __future__ import annotations

import socket
import threading

import redis

from badgetui.services.bus.config import (
    DB_TRANSIENT,
    MAX_BACKOFF,
    REDIS_TRANSIENT,
    close_quietly,
    log,
)
from badgetui.services.bus.entries import outgoing_fields
from badgetui.services.common import Clock, current_database, to_db
from badgetui.store.models import OutgoingEvent


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
                    close_quietly()
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

