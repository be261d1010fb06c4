"""Backfill: replay the recorded intake events against one template, with a preview first.

Why it is built this way:
- Which events: those the intake log recorded as processed, of the event types the template's
  requirements and penalties listen to, received before the template went live (the intake id
  stored when it was activated: events after it were processed live against the template
  already, and replaying those again would apply their penalties twice), from `--since`.
- How: through `Processor.replay`, so fulfilling, awarding, revoking, the outbox and delivery
  are those of ordinary processing, batch by batch, each batch one transaction with the
  checkpoint (the last intake id replayed) written inside it: a kill resumes where the last
  commit stood, and a finished backfill runs again as a no-op. The checkpoint is keyed by the
  template's configuration, so a changed template is backfilled afresh.
- The preview is the same replay inside one transaction that is rolled back: what it lists is
  exactly what the apply will do.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from badgetui.domain.event_records import EVENT_SPECS
from badgetui.domain.events import Event
from badgetui.services.common import (
    Clock,
    ServiceError,
    config_generation,
    current_database,
    set_meta,
    to_db,
)
from badgetui.services.config_io import _template_config
from badgetui.services.matcher import compile_active
from badgetui.services.processing import Processor
from badgetui.services.templates import LIVE_FROM, TemplateService, audit
from badgetui.store.models import AuditLog, IntakeRecord, Learner, Meta, Template

BATCH = 2000
#: Learners named per list in a report (counts are always complete).
LISTED = 200


class _Rollback(Exception):
    pass


@dataclass(slots=True)
class BackfillReport:
    template_id: int
    template: str
    dry_run: bool
    until_id: int
    resumed_after: int = 0
    events: int = 0
    awarded: int = 0
    revoked: int = 0
    learners: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"template": {"id": self.template_id, "name": self.template},
                "dry_run": self.dry_run, "until_intake_id": self.until_id,
                "resumed_after": self.resumed_after, "events": self.events,
                "awarded": self.awarded, "revoked": self.revoked, "counts": self.counts,
                "learners": self.learners, "seconds": round(self.seconds, 3),
                "events_per_second": round(self.events / self.seconds) if self.seconds else 0}


class BackfillService:
    def __init__(self, clock: Clock, processor: Processor, templates: TemplateService) -> None:
        self.clock = clock
        self.processor = processor
        self.templates = templates

    def run(self, ref: str | int, *, since: datetime | None = None, dry_run: bool = False,
            on_progress: Callable[[int, int], None] | None = None) -> BackfillReport:
        tpl = self.templates.get(ref)
        if not dry_run and not tpl.is_active:
            raise ServiceError(f"template {tpl.id} ({tpl.name}) is inactive: activate it "
                               "first (--dry-run previews it as it is)")
        matcher = compile_active(config_generation(), only=[tpl.id])
        compiled = matcher.templates.get(tpl.id)
        if compiled is None or not compiled.requirements:
            raise ServiceError(f"template {tpl.id} ({tpl.name}) has no requirements to "
                               "backfill")
        types = sorted(set(matcher.requirements) | set(matcher.penalties))
        until = self._until(tpl)
        checkpoint = self._checkpoint_key(tpl, until, since)
        start = 0 if dry_run else self._checkpoint(checkpoint)
        report = BackfillReport(tpl.id, tpl.name, dry_run, until, resumed_after=start)
        total = self._count(types, start, until, since)
        learners: dict[str, set[int]] = {"progressed": set(), "awarded": set(), "revoked": set()}
        began = time.perf_counter()
        try:
            with current_database().atomic() if dry_run else nullcontext():
                cursor = start
                while True:
                    batch, last = self._batch(types, cursor, until, since)
                    if not batch:
                        break
                    result = self._apply(batch, matcher, checkpoint, last, dry_run)
                    cursor = last
                    report.events += len(batch)
                    report.awarded += result.awarded
                    report.revoked += result.revoked
                    for key, ids in result.learners.items():
                        learners[key] |= ids
                    if on_progress:
                        on_progress(report.events, total)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        report.seconds = time.perf_counter() - began
        report.counts = {k: len(v) for k, v in learners.items()}
        report.learners = {k: _names(v) for k, v in learners.items()}
        if not dry_run and report.events:
            audit(self.clock, "template.backfill", f"template {tpl.id}",
                  {"events": report.events, "awarded": report.awarded,
                   "revoked": report.revoked, "resumed_after": start})
        return report

    def _apply(self, batch: list[Event], matcher: Any, checkpoint: str, last: int,
               dry_run: bool) -> Any:
        if dry_run:  # inside the preview's one transaction
            return self.processor.replay(batch, matcher)
        with current_database().atomic():
            result = self.processor.replay(batch, matcher)
            set_meta(checkpoint, last)
        return result

    # -- which events ----------------------------------------------------------------------
    def _until(self, tpl: Template) -> int:
        marked = Meta.get_or_none(Meta.key == LIVE_FROM.format(tpl.id))
        if marked is not None:
            return int(marked.value)
        if tpl.is_active:  # activated before badgetui kept the mark: the audit log says when
            when = (AuditLog.select(AuditLog.at).where(
                (AuditLog.action == "template.activate")
                & (AuditLog.target == f"template {tpl.id}")).order_by(AuditLog.at.desc())
                .scalar())
            if when is not None:
                return int(IntakeRecord.select(IntakeRecord.id).where(
                    IntakeRecord.received_at <= when).order_by(IntakeRecord.id.desc())
                    .scalar() or 0)
        return int(IntakeRecord.select(IntakeRecord.id).order_by(IntakeRecord.id.desc())
                   .scalar() or 0)

    def _query(self, types: list[str], after: int, until: int, since: datetime | None) -> Any:
        query = IntakeRecord.select(
            IntakeRecord.id, IntakeRecord.ref_id, IntakeRecord.event_type,
            IntakeRecord.event_time, IntakeRecord.payload,
        ).where((IntakeRecord.outcome == "processed") & (IntakeRecord.id > after)
                & (IntakeRecord.id <= until) & IntakeRecord.event_type.in_(types or [""]))
        if since is not None:
            query = query.where(IntakeRecord.event_time >= to_db(since))
        return query

    def _count(self, types: list[str], after: int, until: int, since: datetime | None) -> int:
        return self._query(types, after, until, since).count()

    def _batch(self, types: list[str], after: int, until: int, since: datetime | None
               ) -> tuple[list[Event], int]:
        rows = list(self._query(types, after, until, since).order_by(IntakeRecord.id)
                    .limit(BATCH).tuples())
        events = []
        for _, ref, event_type, event_time, payload in rows:
            try:
                data = json.loads(payload) if payload else None
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            spec = EVENT_SPECS.get(event_type)
            events.append(Event(ref, event_type, event_time, data, "ok",
                                user_key=spec.user_key if spec else "user"))
        return [e for e in events if e.username], (rows[-1][0] if rows else after)

    # -- the checkpoint --------------------------------------------------------------------
    @staticmethod
    def _checkpoint_key(tpl: Template, until: int, since: datetime | None) -> str:
        config = _template_config(tpl, None).model_dump_json()
        digest = hashlib.sha256(f"{config}|{until}|{since}".encode()).hexdigest()[:16]
        return f"backfill:{tpl.id}:{digest}"

    @staticmethod
    def _checkpoint(key: str) -> int:
        row = Meta.get_or_none(Meta.key == key)
        return int(row.value) if row else 0


def _names(ids: set[int]) -> list[str]:
    chosen = sorted(ids)[:LISTED]
    return sorted(n for (n,) in Learner.select(Learner.username).where(
        Learner.id.in_(chosen or [0])).tuples())
