"""The dead-letter stream (openedx-events.md §7.2): list, show, replay and drop its entries.

The consumer moves an entry here with its eight original fields and six `dlq_*` fields saying
why (`BusConsumer._dead_letter`). Replaying one runs it through the same intake as the consumer
(the same envelope, the same "type not configured: ignored without decoding" rule), one
database transaction per entry, and deletes it from the dead-letter stream after the commit;
one that still cannot be read (malformed) or whose processing fails again stays, its reason in
the result. Deduplication by event id makes a second replay of an event already recorded a
`duplicate`, so replaying never counts an event twice.

Nothing here prints: the command line (badgetui/cli/dlq.py) shows the typed results.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

import redis

from badgetui.domain import avro
from badgetui.domain.events import OUTCOMES
from badgetui.services.bus.config import DB_TRANSIENT, BusConfig, close_quietly
from badgetui.services.bus.entries import (
    MalformedEntry,
    entry_envelope,
    entry_event,
    entry_type,
    id_key,
)
from badgetui.services.common import Clock, NotFound, ServiceError, in_transaction, iso
from badgetui.services.intake import IntakeService

#: The fields the consumer adds to an entry it dead-letters.
DLQ_FIELDS: Final = ("dlq_reason", "dlq_stream_id", "dlq_attempts", "dlq_group",
                     "dlq_consumer", "dlq_time")
#: Replay outcomes beyond intake's: still unreadable, or processing failed again (both stay).
MALFORMED: Final = "malformed"
FAILED: Final = "failed"
REPLAY_OUTCOMES: Final = (*OUTCOMES, MALFORMED, FAILED)
#: How much of `event_data` `show` gives in hex.
EVENT_DATA_SHOWN: Final = 512
_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")


def move_to_dlq(client: redis.Redis, config: BusConfig, entry_id: bytes,
                fields: dict[bytes, bytes], *, reason: str, attempts: int, now: datetime) -> None:
    """One MULTI: the entry (all its fields, plus why) to the DLQ, and its XACK, so an entry
    is never both pending and dead-lettered, nor neither."""
    moved: dict[bytes, bytes] = dict(fields)
    moved.update({
        b"dlq_reason": reason.encode("utf-8", "backslashreplace"),
        b"dlq_stream_id": entry_id,
        b"dlq_attempts": str(attempts).encode(),
        b"dlq_group": config.group.encode(),
        b"dlq_consumer": config.consumer.encode(),
        b"dlq_time": (iso(now) or "").encode(),
    })
    pipe = client.pipeline(transaction=True)
    pipe.xadd(config.dlq_stream, moved)
    pipe.xack(config.stream, config.group, entry_id)
    pipe.execute()


def safe_text(raw: bytes | None) -> str | None:
    """Bytes as one line of text, whatever they hold: bytes that are not UTF-8 and characters
    that are not printable (newlines, escapes, zero-width marks) come out backslash-escaped."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class UnknownEntry(NotFound):
    """An id that names no entry of the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead-letter stream, as `list` shows it (text fields made safe)."""

    id: str
    stream_id: str | None
    event_type: str | None
    event_id: str | None
    reason: str | None
    attempts: int | None
    group: str | None
    consumer: str | None
    time: str | None
    #: Bytes of `event_data`; None when the entry has none.
    size: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadLetterDetail:
    """One entry with all its fields and, when `event_data` decodes, the event's data."""

    letter: DeadLetter
    #: Every field but `event_data` and the `dlq_*` ones, as safe text, in the entry's order.
    fields: dict[str, str | None]
    #: `event_data` decoded with its type's schema (None when it does not decode).
    payload: dict[str, Any] | None
    #: Why `event_data` does not decode (None when it does).
    decode_error: str | None
    #: Why the entry is no event today, as a replay would find (None: a replay reads it).
    malformed: str | None
    #: The first EVENT_DATA_SHOWN bytes of `event_data`, in hex.
    event_data_hex: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.letter.as_dict(), "fields": self.fields, "payload": self.payload,
                "decode_error": self.decode_error, "malformed": self.malformed,
                "event_data_hex": self.event_data_hex}


@dataclass(frozen=True, slots=True)
class Replayed:
    """What replaying one entry did. `removed`: deleted from the dead-letter stream."""

    id: str
    stream_id: str | None
    event_type: str | None
    event_id: str | None
    outcome: str
    reason: str
    awarded: int
    revoked: int
    removed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ReplayReport:
    stream: str
    time: str | None
    entries: list[Replayed] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(e.outcome for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        counts = self.counts
        out: dict[str, Any] = {"dlq_stream": self.stream, "time": self.time,
                               "replayed": len(self.entries)}
        out.update({name: counts.get(name, 0) for name in REPLAY_OUTCOMES})
        out.update(awarded=sum(e.awarded for e in self.entries),
                   revoked=sum(e.revoked for e in self.entries),
                   removed=sum(e.removed for e in self.entries),
                   kept=sum(not e.removed for e in self.entries),
                   entries=[e.as_dict() for e in self.entries])
        return out


def _decoded(fields: dict[bytes, bytes]) -> tuple[dict[str, Any] | None, str | None]:
    """(the data, None) when `event_data` decodes as the entry's whole envelope or on its
    own with its type's schema, else (None, why not)."""
    try:
        return entry_envelope(fields)["data"], None
    except MalformedEntry as exc:
        problem = str(exc)
    raw = fields.get(b"event_data")
    try:
        event_type = entry_type(fields)
    except MalformedEntry:
        return None, problem
    if raw is None or not avro.has_schema(event_type):
        return None, problem
    try:
        return avro.decode(event_type, raw), None
    except avro.AvroDecodeError as exc:
        return None, f"event_data: {exc}"


def _original(fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    dlq = {name.encode() for name in DLQ_FIELDS}
    return {k: v for k, v in fields.items() if k not in dlq}


def _letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: str) -> str | None:
        return safe_text(fields.get(name.encode()))

    attempts_raw = fields.get(b"dlq_attempts", b"")
    attempts = int(attempts_raw) if attempts_raw.isdigit() and len(attempts_raw) < 10 else None
    data = fields.get(b"event_data")
    return DeadLetter(
        id=entry_id.decode("ascii"), stream_id=text("dlq_stream_id"), event_type=text("type"),
        event_id=text("id"), reason=text("dlq_reason"), attempts=attempts,
        group=text("dlq_group"), consumer=text("dlq_consumer"), time=text("dlq_time"),
        size=None if data is None else len(data),
    )


class DeadLetters:
    """The dead-letter stream `config.dlq_stream`, replayed through `intake`."""

    def __init__(self, client: redis.Redis, config: BusConfig, intake: IntakeService,
                 clock: Clock) -> None:
        self.client = client
        self.config = config
        self.intake = intake
        self.clock = clock
        self.stream = config.dlq_stream
        self.source = f"redis-dlq:{config.dlq_stream}"

    # -- reading ---------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.client.xlen(self.stream))

    def list(self, limit: int = 1000, offset: int = 0) -> list[DeadLetter]:
        """Entries oldest first, `offset` of them skipped."""
        if limit <= 0:
            return []
        rows = self.client.xrange(self.stream, "-", "+", count=max(offset, 0) + limit)
        return [_letter(eid, fields or {}) for eid, fields in rows[max(offset, 0):]]

    def show(self, entry_id: str) -> DeadLetterDetail:
        eid, fields = self._fetch([entry_id])[0]
        original = _original(fields)
        shown = {safe_text(k) or "": safe_text(v) for k, v in original.items()
                 if k != b"event_data"}
        payload, decode_error = _decoded(original)
        malformed: str | None = None
        try:
            entry_event(self.intake, original)
        except MalformedEntry as exc:
            malformed = str(exc)
        raw = original.get(b"event_data")
        return DeadLetterDetail(_letter(eid, fields), shown, payload, decode_error, malformed,
                                None if raw is None else raw[:EVENT_DATA_SHOWN].hex())

    # -- changing --------------------------------------------------------------------------
    def replay(self, entry_ids: Sequence[str] | None = None) -> ReplayReport:
        """Replay the entries named (every entry, oldest first, when None), in that order.

        Each goes in in a transaction of its own and, once that committed, is deleted from
        the dead-letter stream, whatever intake made of it (processed, duplicate, ignored,
        dropped, rejected: all recorded in the intake log). One that is still malformed, or
        whose processing fails again, is neither recorded nor deleted."""
        if entry_ids is None:
            entries = [(eid, fields or {}) for eid, fields in
                       self.client.xrange(self.stream, "-", "+")]
        else:
            entries = self._fetch(entry_ids)
        report = ReplayReport(self.stream, iso(self.clock()))
        for eid, fields in entries:
            report.entries.append(self._replay_one(eid, fields))
        return report

    def drop(self, entry_ids: Sequence[str]) -> list[DeadLetter]:
        """Delete the entries named (all or none: every id is checked first)."""
        entries = self._fetch(entry_ids)
        if entries:
            self.client.xdel(self.stream, *[eid for eid, _ in entries])
        return [_letter(eid, fields) for eid, fields in entries]

    # -- one entry -------------------------------------------------------------------------
    def _replay_one(self, eid: bytes, fields: dict[bytes, bytes]) -> Replayed:
        letter = _letter(eid, fields)

        def result(outcome: str, reason: str, *, awarded: int = 0, revoked: int = 0,
                   removed: bool = False) -> Replayed:
            return Replayed(letter.id, letter.stream_id, letter.event_type, letter.event_id,
                            outcome, reason, awarded, revoked, removed)

        try:
            event = entry_event(self.intake, _original(fields))
        except MalformedEntry as exc:
            return result(MALFORMED, f"malformed: {exc}")
        try:
            batch = in_transaction(lambda: self.intake.ingest_batch([event], self.source))
        except Exception as exc:  # as the consumer: any failure of the entry keeps it
            if isinstance(exc, DB_TRANSIENT):
                close_quietly()  # the next entry opens a fresh connection
            return result(FAILED, f"processing failed: {type(exc).__name__}: {exc}")
        if batch.errors:
            return result(FAILED, batch.errors[0][1])
        outcome = next(iter(batch.counts), event.status)
        reason = "already processed" if outcome == "duplicate" else event.reason
        removed = bool(self.client.xdel(self.stream, eid))
        return result(outcome, reason, awarded=batch.awarded, revoked=batch.revoked,
                      removed=removed)

    def _fetch(self, entry_ids: Iterable[str]) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """The entries of these ids (each once, in the order given); every id is checked
        before anything is done, so an unknown one changes nothing."""
        wanted = list(dict.fromkeys(str(i).strip() for i in entry_ids))
        for entry_id in wanted:
            if not _ENTRY_ID.fullmatch(entry_id):
                raise ServiceError(f"not a stream entry id: {json.dumps(entry_id)} (expected "
                                   "<milliseconds>-<sequence>, e.g. 1700000000000-0)")
        pipe = self.client.pipeline(transaction=False)
        for entry_id in wanted:
            pipe.xrange(self.stream, entry_id, entry_id, count=1)
        found: list[tuple[bytes, dict[bytes, bytes]]] = []
        missing: list[str] = []
        for entry_id, rows in zip(wanted, pipe.execute(), strict=True):
            if rows and id_key(rows[0][0]) == id_key(entry_id):
                found.append((rows[0][0], rows[0][1] or {}))
            else:
                missing.append(entry_id)
        if missing:
            raise UnknownEntry(f"no dead letter {', '.join(missing)} in {self.stream}")
        return found
