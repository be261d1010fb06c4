"""Event intake: one way in for files, stdin, the event bus and the demo.

Lines are parsed as they stream in and processed in batches (of `batch_size` events and at
most `BATCH_TEXT` characters of line text), so memory stays flat however long the stream is
and however long its lines are; each bad line is reported with its number and reason and the
rest goes on. `services.lines` reads files and stdin with a bound on each line.

Whatever an event holds, its outcome is recorded the same way on SQLite and PostgreSQL: an id
or username too long for an index (PostgreSQL refuses them, SQLite would keep them) rejects the
event saying which, and every reason is one printable line of bounded length.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from badgetui.domain.events import OUTCOMES, REASON_LIMIT, Event, parse_line, parse_object
from badgetui.services.common import Clock
from badgetui.services.lines import BadLine
from badgetui.services.processing import BatchResult, Processor

#: Problems kept in a report for display; counts are always complete.
MAX_PROBLEMS = 1000
#: Characters of line text one batch holds at most (a longer line is a batch of its own),
#: besides its `batch_size` events: 500 lines of 16 MiB would otherwise be held at once.
BATCH_TEXT = 16 * 1024 * 1024

#: Longest event id and username kept, in UTF-8 bytes (a NUL counted as the U+FFFD PostgreSQL
#: stores). Both are indexed (the intake log's claim and reference, the learners), and a
#: PostgreSQL B-tree entry holds at most about 2,700 bytes: longer values failed there (the
#: batch, then the event) while SQLite took them. Text columns are unbounded otherwise (0005).
KEY_BYTES = 1024


def _key_bytes(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass")) + 2 * value.count("\x00")


def one_line(reason: str, limit: int = REASON_LIMIT) -> str:
    """A reason as one printable line of at most `limit` characters: control characters,
    line separators and lone surrogates escaped (`\\n`, `\\x1b`, `\\ud800`)."""
    text = reason[: limit + 1]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _too_long(event: Event) -> str | None:
    """Why an event to be processed cannot be indexed as it is, or None."""
    if event.id is not None and _key_bytes(event.id) > KEY_BYTES:
        return f"id is longer than {KEY_BYTES:,} bytes ({_key_bytes(event.id):,})"
    username = event.username
    if isinstance(username, str) and _key_bytes(username) > KEY_BYTES:
        return f"username is longer than {KEY_BYTES:,} bytes ({_key_bytes(username):,})"
    return None


def storable(event: Event) -> Event:
    """The event as any backend can record it: one whose id or username is too long to index
    is rejected (saying which); a reference that is only recorded (the id of a rejected or
    ignored event) and too long is left out; the reason is made one printable line."""
    if event.status in ("ok", "dropped"):
        problem = _too_long(event)
        if problem:
            raw = event.raw
            if raw is None and event.payload is not None:
                raw = json.dumps(event.payload)[:2000]  # what was refused, for the log
            fits = event.id is None or _key_bytes(event.id) <= KEY_BYTES
            return Event(event.id if fits else None, event.event_type, None, None, "rejected",
                         problem, line=event.line, raw=raw)
    changes: dict[str, object] = {}
    if event.id is not None and _key_bytes(event.id) > KEY_BYTES:
        changes["id"] = None
    if event.reason and not (len(event.reason) <= REASON_LIMIT and event.reason.isprintable()):
        changes["reason"] = one_line(event.reason)
    return replace(event, **changes) if changes else event


@dataclass(slots=True)
class Problem:
    line: int | None
    outcome: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.outcome}: {self.reason}"


@dataclass(slots=True)
class IngestReport:
    counts: Counter[str] = field(default_factory=Counter)
    awarded: int = 0
    revoked: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0

    def add(self, result: BatchResult) -> None:
        self.counts.update(result.counts)
        self.awarded += result.awarded
        self.revoked += result.revoked

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        out = {name: self.counts.get(name, 0) for name in OUTCOMES}
        out["awarded"] = self.awarded
        out["revoked"] = self.revoked
        return out


ProblemHook = Callable[[Problem], None]
ProgressHook = Callable[[IngestReport], None]


class IntakeService:
    """Parses, deduplicates and processes events, recording every outcome."""

    def __init__(
        self,
        processor: Processor,
        events: Iterable[str],
        clock: Clock,
        batch_size: int = 500,
    ) -> None:
        self.processor = processor
        self.configured = frozenset(events)
        self.clock = clock
        self.batch_size = batch_size

    def parse_lines(self, lines: Iterable[str | BadLine], now: datetime) -> Iterator[Event]:
        """Events from JSON Lines text; blank lines are skipped, numbering starts at 1."""
        for _, parse in self._parse_sized(lines, now):
            yield parse()

    def _parse_sized(self, lines: Iterable[str | BadLine], now: datetime
                     ) -> Iterator[tuple[int, Callable[[], Event]]]:
        """(characters of a line, what parses it): sized before they are parsed, so that a
        batch can go in before a large line is added to it. A `BadLine` of the reader is a
        rejected line."""
        configured = self.configured
        for number, text in enumerate(lines, start=1):
            if isinstance(text, BadLine):
                bad = Event(None, None, None, None, "rejected", text.reason, line=number,
                            raw=text.preview or None)
                yield 0, lambda bad=bad: bad
                continue
            if not text.strip():
                continue
            yield len(text), lambda text=text, number=number: parse_line(
                text, number, configured, now)
            del text  # a 16 MiB line is not kept while the next one is read

    def ingest_lines(
        self,
        lines: Iterable[str | BadLine],
        source: str,
        *,
        on_problem: ProblemHook | None = None,
        on_progress: ProgressHook | None = None,
    ) -> IngestReport:
        """JSON Lines text (each item one line, as `services.lines.read_lines` yields them)."""
        return self._ingest_sized(
            self._parse_sized(lines, self.clock()), source,
            on_problem=on_problem, on_progress=on_progress,
        )

    def ingest_objects(self, objects: Iterable[object], source: str) -> IngestReport:
        """Already decoded events (the bus, the demo)."""
        now = self.clock()
        return self.ingest((parse_object(o, self.configured, now) for o in objects), source)

    def parse_object(self, obj: object) -> Event:
        """One decoded event (a bus envelope, say), classified against the configured types."""
        return parse_object(obj, self.configured, self.clock())

    def ingest_batch(self, events: Sequence[Event], source: str) -> BatchResult:
        """One batch, for callers that acknowledge per event (the event bus): the events of
        `result.errors` were not recorded and may be retried; every other one is committed."""
        fitted = [storable(e) for e in events]
        result = self.processor.process(fitted, source)
        if result.errors:  # the caller's own events, which it matches by identity
            mine = {id(f): e for f, e in zip(fitted, events, strict=True)}
            result.errors = [(mine.get(id(f), f), why) for f, why in result.errors]
        return result

    def ingest(
        self,
        events: Iterable[Event],
        source: str,
        *,
        on_problem: ProblemHook | None = None,
        on_progress: ProgressHook | None = None,
    ) -> IngestReport:
        return self._ingest_sized(((0, lambda e=e: e) for e in events), source,
                                  on_problem=on_problem, on_progress=on_progress)

    def _ingest_sized(
        self,
        events: Iterable[tuple[int, Callable[[], Event]]],
        source: str,
        *,
        on_problem: ProblemHook | None = None,
        on_progress: ProgressHook | None = None,
    ) -> IngestReport:
        report = IngestReport()
        batch: list[Event] = []
        text = 0

        def flush() -> None:
            nonlocal batch, text
            self._run(batch, source, report, on_problem)
            batch, text = [], 0
            if on_progress:
                on_progress(report)

        for size, parse in events:
            if batch and text + size > BATCH_TEXT:
                flush()  # before the large line is parsed: never two large batches held
            batch.append(parse())
            del parse  # nor is its text, once parsed
            text += size
            if len(batch) >= self.batch_size or text >= BATCH_TEXT:
                flush()
        if batch:
            self._run(batch, source, report, on_problem)
        if on_progress:
            on_progress(report)
        return report

    def _run(
        self, batch: list[Event], source: str, report: IngestReport, on_problem: ProblemHook | None
    ) -> None:
        batch[:] = [storable(e) for e in batch]
        result = self.processor.process(batch, source)
        report.add(result)
        problems = [
            Problem(e.line, e.status, e.reason)
            for e in batch
            if e.status in ("rejected", "dropped")
        ]
        for event, reason in result.errors:
            report.counts["rejected"] += 1
            problems.append(Problem(event.line, "rejected", one_line(reason)))
        problems.sort(key=lambda p: p.line or 0)
        for problem in problems:
            report.problems_total += 1
            if len(report.problems) < MAX_PROBLEMS:
                report.problems.append(problem)
            if on_problem:
                on_problem(problem)
