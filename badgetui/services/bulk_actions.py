"""Bulk operator actions: revoke, re-send or retry every badge a filter selects.

Each badge goes through the single-badge code path (`BadgeActions.revoke` / `resend`), so the
outgoing events, delivery jobs, progress resets and audit entries of a bulk revoke are exactly
those of as many single revokes. Badges are taken in chunks (`chunk_size`, one transaction
each, retried whole when PostgreSQL aborts it as a deadlock loser), in id order, and only
those that existed when the run began (the count the operator confirmed):

- resumable: a chunk is committed before the next is read, and every action removes its badge
  from what the action applies to (a revoked badge is no longer awarded; a re-sent one has an
  issue on its way; a retried one has no failed job left), so running the same command again
  after a kill picks up what is left, and running it twice does nothing the second time;
- one badge that fails (an error of the database or of the action) is rolled back alone (a
  savepoint) and reported with one line; the others of its chunk go on;
- a badge whose action no longer applies when its turn comes (revoked by a penalty meanwhile,
  an issue already on its way) is skipped, like those the filter matches that the action never
  applied to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from peewee import DatabaseError, fn

from badgetui.domain.provider_states import PROVIDER_STATES
from badgetui.services.badge_actions import ActionRefused, BadgeActions
from badgetui.services.common import (
    Clock,
    NotFound,
    ServiceError,
    chunked,
    current_database,
    in_transaction,
    is_retryable,
    iso,
    to_db,
)
from badgetui.services.queries import BadgeView, _badge_query, _badge_view
from badgetui.services.templates import TemplateService, audit
from badgetui.store.models import Badge, DeliveryJob, Learner, Template

ACTIONS = ("revoke", "resend", "retry")

#: Badges per transaction: large enough to be quick, small enough that a delivery worker (which
#: passes over badges being revoked) and the console never wait long.
CHUNK_SIZE = 500

#: Learner ids per `IN (...)` list: a learner file may name any number of learners.
_LEARNER_BATCH = 500

#: Why the filter's other matches are left alone, per action.
NOT_APPLICABLE = {
    "revoke": "not awarded",
    "resend": "not awarded, or an issue already on its way",
    "retry": "no failed delivery job",
}

Progress = Callable[[int, int], None]


def parse_learners(text: str) -> list[str]:
    """Usernames of a learner file: one a line; blank lines and `#` comment lines ignored;
    each name once, in the file's order."""
    names: dict[str, None] = {}
    for line in text.splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            names.setdefault(name, None)
    return list(names)


def normalize_reason(reason: str) -> str:
    """The reason as the provider will show it; a revoke without one is refused."""
    text = " ".join((reason or "").split())
    if not text:
        raise ServiceError("a revoke needs a reason (the provider shows it to the learner)")
    return text


@dataclass(slots=True)
class BadgeFilter:
    """Which badges: every field set narrows the selection (None / False: not filtered).

    `awarded_after` is inclusive and `awarded_before` exclusive, so consecutive ranges never
    overlap; naive datetimes are UTC. `learners` is a list of usernames: an empty list
    selects nothing (it never means "every learner")."""

    template: str | int | None = None
    provider_state: str | None = None
    status: str | None = None
    awarded_before: datetime | None = None
    awarded_after: datetime | None = None
    learners: Sequence[str] | None = None
    failed_only: bool = False

    def is_empty(self) -> bool:
        return (self.template is None and not self.provider_state and not self.status
                and self.awarded_before is None and self.awarded_after is None
                and self.learners is None and not self.failed_only)

    def describe(self) -> str:
        """One line naming the filter (the audit entry's target)."""
        parts = []
        if self.template is not None:
            parts.append(f"template {self.template}")
        if self.provider_state:
            parts.append(f"provider state {self.provider_state}")
        if self.status:
            parts.append(f"status {self.status}")
        if self.awarded_after is not None:
            parts.append(f"awarded from {iso(self.awarded_after)}")
        if self.awarded_before is not None:
            parts.append(f"awarded before {iso(self.awarded_before)}")
        if self.learners is not None:
            parts.append(f"{len(self.learners)} learners")
        if self.failed_only:
            parts.append("failed only")
        return ", ".join(parts) or "every badge"


@dataclass(slots=True)
class BulkReport:
    """What a run did. `matched` = `done` + `skipped` + `len(failed)` for the badges that
    existed when it began; `total` is what the action applied to then (the dry run's count)."""

    action: str
    matched: int = 0
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Chunk:
    last_id: int = 0
    seen: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)


class BulkActions:
    def __init__(self, clock: Clock, badges: BadgeActions, *,
                 chunk_size: int = CHUNK_SIZE) -> None:
        self.clock = clock
        self.badges = badges
        self.chunk_size = chunk_size

    # -- what a dry run shows ------------------------------------------------------------
    def count(self, selection: BadgeFilter, action: str) -> int:
        """How many badges `action` would touch now."""
        where = self._where(selection, action)
        return sum(Badge.select().where(w).count() for w in self._scoped(selection, where))

    def preview(self, selection: BadgeFilter, action: str, limit: int = 20) -> list[BadgeView]:
        """The first badges `action` would touch, in the order a run takes them."""
        where = self._where(selection, action)
        rows: list[BadgeView] = []
        for scoped in self._scoped(selection, where):
            if len(rows) >= limit:
                break
            query = _badge_query().where(scoped).order_by(Badge.id).limit(limit - len(rows))
            rows.extend(_badge_view(b) for b in query.objects())
        return rows

    def missing_learners(self, selection: BadgeFilter) -> list[str]:
        """Usernames of the filter's learner list that name no learner here."""
        if not selection.learners:
            return []
        names = list(dict.fromkeys(selection.learners))
        known: set[str] = set()
        for batch in chunked(names, _LEARNER_BATCH):
            known.update(u for (u,) in Learner.select(Learner.username)
                         .where(Learner.username.in_(batch)).tuples())
        return [n for n in names if n not in known]

    # -- the actions ---------------------------------------------------------------------
    def revoke(self, selection: BadgeFilter, reason: str, *, actor: str = "operator",
               on_progress: Progress | None = None) -> BulkReport:
        """Revoke every awarded badge the filter selects, each as `BadgeActions.revoke`."""
        text = normalize_reason(reason)
        return self._run(selection, "revoke", lambda b: self.badges.revoke(b.id, text, actor),
                         actor, on_progress, {"reason": text})

    def resend(self, selection: BadgeFilter, *, actor: str = "operator",
               on_progress: Progress | None = None) -> BulkReport:
        """Re-send every awarded badge the filter selects that has no issue on its way, each
        as `BadgeActions.resend` (a failed issue is requeued; otherwise the provider is
        looked up first, so a badge already there is adopted, never issued twice)."""
        return self._run(selection, "resend", lambda b: self.badges.resend(b.id, actor),
                         actor, on_progress)

    def retry(self, selection: BadgeFilter, *, actor: str = "operator",
              on_progress: Progress | None = None) -> BulkReport:
        """Requeue the failed delivery jobs (issue or revoke) of the badges the filter selects,
        as the operator's single retry does (`DeliveryService.retry_failed`)."""

        def requeue(badge: Any) -> None:
            now = to_db(self.clock())
            with current_database().atomic():
                again = DeliveryJob.update(state="queued", next_attempt_at=now,
                                           updated_at=now).where(
                    (DeliveryJob.badge == badge.id) & (DeliveryJob.state == "failed")).execute()
                if not again:
                    raise ActionRefused(f"badge {badge.id} has no failed delivery job")
                audit(self.clock, "badge.retry", badge.uuid, {"jobs": again}, actor=actor)

        return self._run(selection, "retry", requeue, actor, on_progress)

    # -- selection -----------------------------------------------------------------------
    def _where(self, selection: BadgeFilter, action: str) -> Any:
        """The filter and what `action` applies to, as one condition (learners aside)."""
        if action not in ACTIONS:
            raise ServiceError(f"unknown bulk action {action!r} (one of {', '.join(ACTIONS)})")
        where = self._filter(selection)
        if action == "retry":
            return where & Badge.id.in_(_failed_job_badges())
        where &= Badge.status == "awarded"
        if action == "resend":
            in_flight = DeliveryJob.select(DeliveryJob.badge).where(
                (DeliveryJob.kind == "issue") & DeliveryJob.state.in_(["queued", "running"]))
            where &= Badge.id.not_in(in_flight)
        return where

    def _filter(self, selection: BadgeFilter) -> Any:
        where = Badge.id > 0
        if selection.template is not None:
            template: Template = TemplateService(self.clock).get(selection.template)
            where &= Badge.template == template.id
        if selection.status:
            if selection.status not in ("awarded", "revoked"):
                raise ServiceError(f"unknown status {selection.status!r} (awarded or revoked)")
            where &= Badge.status == selection.status
        if selection.provider_state:
            if selection.provider_state not in PROVIDER_STATES:
                raise ServiceError(f"unknown provider state {selection.provider_state!r} "
                                   f"(one of {', '.join(PROVIDER_STATES)})")
            where &= Badge.provider_state == selection.provider_state
        after, before = selection.awarded_after, selection.awarded_before
        if after is not None and before is not None and to_db(after) >= to_db(before):
            raise ServiceError(f"no badge can be awarded from {iso(after)} and before "
                               f"{iso(before)}: the range is empty")
        if after is not None:
            where &= Badge.awarded_at >= to_db(after)
        if before is not None:
            where &= Badge.awarded_at < to_db(before)
        if selection.failed_only:
            where &= (Badge.provider_state == "error") | Badge.id.in_(_failed_job_badges())
        return where

    def _scoped(self, selection: BadgeFilter, where: Any,
                batches: list[Sequence[int]] | None = None) -> list[Any]:
        """`where` once, or once per batch of the named learners (none: nothing matches)."""
        if selection.learners is None:
            return [where]
        if batches is None:
            batches = self._learner_batches(selection)
        return [where & Badge.learner.in_(batch) for batch in batches]

    def _learner_batches(self, selection: BadgeFilter) -> list[Sequence[int]]:
        ids: list[int] = []
        for batch in chunked(list(dict.fromkeys(selection.learners or ())), _LEARNER_BATCH):
            ids.extend(i for (i,) in Learner.select(Learner.id)
                       .where(Learner.username.in_(batch)).tuples())
        return list(chunked(sorted(ids), _LEARNER_BATCH))

    # -- the run -------------------------------------------------------------------------
    def _run(self, selection: BadgeFilter, action: str, act: Callable[[Any], object],
             actor: str, on_progress: Progress | None,
             detail: dict[str, Any] | None = None) -> BulkReport:
        where = self._where(selection, action)
        # Only the badges that exist now: the count the operator confirmed, not awards that
        # arrive while the run goes on.
        ceiling = Badge.select(fn.MAX(Badge.id)).scalar() or 0
        batches = self._learner_batches(selection) if selection.learners is not None else None
        scopes = [w & (Badge.id <= ceiling) for w in self._scoped(selection, where, batches)]
        matched = [w & (Badge.id <= ceiling)
                   for w in self._scoped(selection, self._filter(selection), batches)]
        report = BulkReport(action)
        report.matched = sum(Badge.select().where(w).count() for w in matched)
        report.total = sum(Badge.select().where(w).count() for w in scopes)
        in_transaction(lambda: audit(self.clock, f"badges.bulk_{action}", selection.describe(),
                                     {**(detail or {}), "badges": report.total}, actor=actor))
        seen = 0
        for scope in scopes:
            last_id = 0
            while True:
                chunk = in_transaction(partial(self._chunk, scope, last_id, act))
                if not chunk.seen:
                    break
                last_id = chunk.last_id
                seen += chunk.seen
                report.done += chunk.done
                report.failed.extend(chunk.failed)
                if on_progress is not None:
                    on_progress(seen, report.total)
        # What the filter matched that the action did not apply to: when the run began, or by
        # the time its turn came (changed meanwhile: revoked by a penalty, an issue on its way).
        report.skipped = max(report.matched - report.done - len(report.failed), 0)
        return report

    def _chunk(self, scope: Any, after: int, act: Callable[[Any], object]) -> _Chunk:
        """One transaction: the next badges after `after`, each acted on in a savepoint."""
        rows = list(
            Badge.select(Badge.id, Badge.uuid, Learner.username, Template.external_id)
            .join(Learner).switch(Badge).join(Template)
            .where(scope & (Badge.id > after)).order_by(Badge.id).limit(self.chunk_size)
            .objects()
        )
        chunk = _Chunk(last_id=rows[-1].id if rows else after, seen=len(rows))
        for row in rows:
            try:
                act(row)
            except (ActionRefused, NotFound):
                continue  # changed since it was selected: nothing to do any more (skipped)
            except ServiceError as exc:
                chunk.failed.append(_failure(row, str(exc)))
            except DatabaseError as exc:
                if is_retryable(exc):
                    raise  # the whole chunk is tried again (in_transaction)
                chunk.failed.append(_failure(row, f"{type(exc).__name__}: {exc}"))
            else:
                chunk.done += 1
        return chunk


def _failed_job_badges() -> Any:
    return DeliveryJob.select(DeliveryJob.badge).where(DeliveryJob.state == "failed")


def _failure(row: Any, message: str) -> str:
    line = " ".join(message.split()) or "failed"
    return f"badge {row.id} ({row.username}, template {row.external_id}): {line}"

