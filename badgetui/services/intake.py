"""Event intake: one way in for files, stdin, the event bus and the demo.

Lines are parsed as they stream in and processed in batches, so memory stays flat however long
the stream is; each bad line is reported with its number and reason and the rest goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from badgetui.domain.events import OUTCOMES, Event, parse_line, parse_object
from badgetui.services.common import Clock
from badgetui.services.processing import BatchResult, Processor

#: Problems kept in a report for display; counts are always complete.
MAX_PROBLEMS = 1000


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

    def parse_lines(self, lines: Iterable[str], now: datetime) -> Iterator[Event]:
        """Events from JSON Lines text; blank lines are skipped, numbering starts at 1."""
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            yield parse_line(text, number, self.configured, now)

    def ingest_lines(
        self,
        lines: Iterable[str],
        source: str,
        *,
        on_problem: ProblemHook | None = None,
        on_progress: ProgressHook | None = None,
    ) -> IngestReport:
        return self.ingest(
            self.parse_lines(lines, self.clock()), source,
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
        return self.processor.process(events, source)

    def ingest(
        self,
        events: Iterable[Event],
        source: str,
        *,
        on_problem: ProblemHook | None = None,
        on_progress: ProgressHook | None = None,
    ) -> IngestReport:
        report = IngestReport()
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) >= self.batch_size:
                self._run(batch, source, report, on_problem)
                batch = []
                if on_progress:
                    on_progress(report)
        if batch:
            self._run(batch, source, report, on_problem)
        if on_progress:
            on_progress(report)
        return report

    def _run(
        self, batch: list[Event], source: str, report: IngestReport, on_problem: ProblemHook | None
    ) -> None:
        result = self.processor.process(batch, source)
        report.add(result)
        problems = [
            Problem(e.line, e.status, e.reason)
            for e in batch
            if e.status in ("rejected", "dropped")
        ]
        for event, reason in result.errors:
            report.counts["rejected"] += 1
            problems.append(Problem(event.line, "rejected", reason))
        problems.sort(key=lambda p: p.line or 0)
        for problem in problems:
            report.problems_total += 1
            if len(report.problems) < MAX_PROBLEMS:
                report.problems.append(problem)
            if on_problem:
                on_problem(problem)
