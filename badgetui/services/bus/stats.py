"""What a consumer run did, counted: the command's summary line and its --json."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from badgetui.domain.events import OUTCOMES
from badgetui.services.processing import BatchResult


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
    #: Entries of a newer minor version than ours, read with the known fields.
    newer: int = 0
    #: Seconds spent waiting for an earlier entry held by another consumer.
    waited: float = 0.0

    def add(self, result: BatchResult) -> None:
        self.counts.update(result.counts)
        self.awarded += result.awarded
        self.revoked += result.revoked

    def as_dict(self) -> dict[str, int]:
        out = {name: self.counts.get(name, 0) for name in OUTCOMES}
        out.update(awarded=self.awarded, revoked=self.revoked, acked=self.acked,
                   dead_lettered=self.dead_lettered, retried=self.retried,
                   published=self.published, reconnects=self.reconnects,
                   newer_minor=self.newer,
                   waited_ms=round(self.waited * 1000))
        return out
