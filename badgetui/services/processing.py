"""Event processing (semantics.md "Intake", "Progress and awarding", "Penalties and revocation").

A batch of parsed events is applied in arrival order to an in-memory view of the learners'
progress, then written with a handful of bulk statements in one transaction together with the
intake records. The result is the same as processing the events one at a time, each in its own
transaction; if the batch fails to write, it is retried exactly that way.

Several processes may share one database. On SQLite a writer holds the whole file (BEGIN
IMMEDIATE), so batches simply take turns. On PostgreSQL (READ COMMITTED) a batch first locks
the rows of its learners (SELECT ... FOR NO KEY UPDATE, in username order; learners it has to
create are inserted with ON CONFLICT DO NOTHING and then locked the same way), and only then
reads which events were already processed and the progress: a learner's events are therefore
applied by one batch at a time, each exactly once, in the order its stream gives them,
whichever process runs them. Unique constraints (event id, learner, progress, held badge) back
this up, and a transaction PostgreSQL aborts as a deadlock or serialization victim is run again
(`in_transaction`), so a conflict costs a retry, never an event.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from peewee import DatabaseError, fn

from badgetui.domain.events import BADGE_AWARDED, BADGE_REVOKED, Event
from badgetui.domain.progress import fulfilled_groups
from badgetui.services.common import (
    Clock,
    chunked,
    config_generation,
    executemany,
    in_transaction,
    insert_rows,
    is_postgres,
    iso,
    stop_issue,
    to_db,
)
from badgetui.services.matcher import (
    CompiledPenalty,
    CompiledRequirement,
    CompiledTemplate,
    Matcher,
    compile_active,
)
from badgetui.store.database import pg_text
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Fulfillment,
    IntakeRecord,
    Learner,
    OutgoingEvent,
    Progress,
)

IN_CHUNK = 500


@dataclass(slots=True)
class _Badge:
    """A badge touched by this batch: new (id None until written) or revoked from before."""

    uuid: str
    learner_id: int
    template: CompiledTemplate
    status: str
    awarded_at: datetime | None = None
    award_event_id: str = ""
    evidence: dict[str, Any] | None = None
    id: int | None = None
    is_new: bool = False
    revoked_at: datetime | None = None
    revoke_event_id: str | None = None
    revoke_reason: str = ""
    revocation: dict[str, Any] | None = None


@dataclass(slots=True)
class _State:
    """One learner's progress on one template, as the batch sees it."""

    learner_id: int
    template: CompiledTemplate
    progress_id: int | None = None
    # requirement id -> (fulfillment row id or None when new, event id, event time)
    fulfilled: dict[int, tuple[int | None, str, datetime]] = field(default_factory=dict)
    loaded_rows: dict[int, int] = field(default_factory=dict)
    badge_id: int | None = None
    badge: _Badge | None = None
    dirty: bool = False
    revoked_here: bool = False
    groups_done: int = 0
    complete: bool = False

    @property
    def holds_badge(self) -> bool:
        return self.badge is not None or self.badge_id is not None

    def refresh(self) -> None:
        groups = self.template.groups
        self.groups_done = fulfilled_groups(groups, self.fulfilled)
        self.complete = bool(groups) and self.groups_done == len(groups)
        self.dirty = True


@dataclass(slots=True)
class BatchResult:
    counts: Counter[str] = field(default_factory=Counter)
    awarded: int = 0
    revoked: int = 0
    errors: list[tuple[Event, str]] = field(default_factory=list)
    #: A replay's effects by learner id: "progressed", "awarded", "revoked".
    learners: dict[str, set[int]] = field(default_factory=dict)


class Processor:
    """Applies events to the store. One instance per process; it caches the compiled config."""

    def __init__(self, clock: Clock, *, reaward_after_revoke: bool = True) -> None:
        self.clock = clock
        self.reaward_after_revoke = reaward_after_revoke
        self._matcher: Matcher | None = None

    # -- configuration -------------------------------------------------------------------
    def matcher(self) -> Matcher:
        """The compiled active configuration, rebuilt when its generation moved."""
        generation = config_generation()
        if self._matcher is None or self._matcher.generation != generation:
            self._matcher = compile_active(generation)
        return self._matcher

    # -- entry point ---------------------------------------------------------------------
    def process(self, events: Sequence[Event], source: str) -> BatchResult:
        """Record and apply a batch; falls back to one transaction per event on a write error."""
        if is_postgres():
            events = [_storable(e) for e in events]
        try:
            return in_transaction(lambda: self._apply(events, source))
        except DatabaseError:
            if len(events) == 1:
                raise
        result = BatchResult()
        for event in events:
            try:
                one = in_transaction(lambda event=event: self._apply([event], source))
            except DatabaseError as exc:
                result.errors.append((event, f"processing failed: {exc}"))
                continue
            result.counts.update(one.counts)
            result.awarded += one.awarded
            result.revoked += one.revoked
        return result

    def replay(self, events: Sequence[Event], matcher: Matcher) -> BatchResult:
        """Apply recorded events again against `matcher` (a backfill of some templates): the
        same locks, progress, awards, revocations, outbox and delivery jobs as processing,
        but no duplicate check and no intake record (the events are in the ledger already),
        and the learners' data left as newer events made it."""
        return in_transaction(lambda: self._replay(events, matcher))

    def _replay(self, events: Sequence[Event], matcher: Matcher) -> BatchResult:
        now = self.clock()
        result = BatchResult()
        ok = [e for e in events if e.status == "ok"]
        known = self._lock_learners(sorted({e.username or "" for e in ok}))
        missing = sorted({e.username or "" for e in ok} - known.keys())
        if missing:
            known.update(self._create_learners(missing, ok, now))
        learners = {name: row[0] for name, row in known.items()}
        matches = [matcher.match(e.event_type or "", e.payload or {}) for e in ok]
        pairs = {(learners[e.username or ""], item.template_id)
                 for e, (reqs, pens) in zip(ok, matches, strict=True) for item in (*reqs, *pens)}
        states = self._load_states(pairs, matcher)
        had = {key: set(state.fulfilled) for key, state in states.items()}
        touched: list[_Badge] = []
        outbox: list[tuple[str, _Badge, dict[str, Any]]] = []
        for event, (reqs, pens) in zip(ok, matches, strict=True):
            learner_id = learners[event.username or ""]
            effects: list[str] = []
            before = len(outbox)
            self._fulfil(event, learner_id, reqs, states, effects, touched, outbox, now)
            self._penalise(event, learner_id, pens, states, effects, touched, outbox, now)
            result.counts["replayed"] += 1
            for event_type, _, _ in outbox[before:]:
                if event_type == BADGE_AWARDED:
                    result.awarded += 1
                else:
                    result.revoked += 1
        self._flush(states, touched, outbox, now)
        result.learners = {
            "progressed": {k[0] for k, st in states.items() if set(st.fulfilled) - had[k]},
            "awarded": {b.learner_id for b in touched if b.is_new},  # revoked later, maybe
            "revoked": {b.learner_id for b in touched if b.status == "revoked"},
        }
        return result

    # -- the batch -----------------------------------------------------------------------
    def _apply(self, events: Sequence[Event], source: str) -> BatchResult:
        now = self.clock()
        matcher = self.matcher()
        result = BatchResult()
        records: list[tuple[Any, ...] | None] = [None] * len(events)

        ok = [e for e in events if e.status == "ok"]
        # Lock the learners before reading anything about them (see the module docstring).
        known = self._lock_learners(sorted({e.username or "" for e in ok}))
        seen = self._already_processed([e.id for e in ok if e.id])
        candidates = _first_seen(ok, seen)
        missing = sorted({e.username or "" for e in candidates} - known.keys())
        if missing:
            known.update(self._create_learners(missing, candidates, now))
            # Another process may have created (and fed) one of them since `seen` was read:
            # now that they are locked, what it committed is visible.
            new = set(missing)
            seen.update(self._already_processed(
                [e.id for e in ok if e.id and (e.username or "") in new]))

        fresh: list[Event] = []
        slots: list[int] = []
        for index, event in enumerate(events):
            if event.status == "ok":
                if event.id in seen:
                    result.counts["duplicate"] += 1
                    records[index] = self._record(event, "duplicate", "already processed",
                                                  source, now, claim=False)
                    continue
                seen.add(event.id)
                fresh.append(event)
                slots.append(index)
            else:
                result.counts[event.status] += 1
                records[index] = self._record(event, event.status, event.reason, source, now,
                                              claim=False)

        learners = self._update_learners(fresh, known, now)
        matches: list[tuple[list[CompiledRequirement], list[CompiledPenalty]]] = [
            matcher.match(e.event_type or "", e.payload or {}) for e in fresh
        ]
        pairs = {
            (learners[e.username or ""], item.template_id)
            for e, (reqs, pens) in zip(fresh, matches, strict=True)
            for item in (*reqs, *pens)
        }
        states = self._load_states(pairs, matcher)
        touched: list[_Badge] = []
        outbox: list[tuple[str, _Badge, dict[str, Any]]] = []

        for slot, event, (reqs, pens) in zip(slots, fresh, matches, strict=True):
            learner_id = learners[event.username or ""]
            effects: list[str] = []
            before = len(outbox)
            self._fulfil(event, learner_id, reqs, states, effects, touched, outbox, now)
            self._penalise(event, learner_id, pens, states, effects, touched, outbox, now)
            result.counts["processed"] += 1
            for event_type, _, _ in outbox[before:]:
                if event_type == BADGE_AWARDED:
                    result.awarded += 1
                else:
                    result.revoked += 1
            records[slot] = self._record(event, "processed", "", source, now, claim=True,
                                         effects="; ".join(effects))

        self._flush(states, touched, outbox, now)
        insert_rows(IntakeRecord, _RECORD_FIELDS, [r for r in records if r is not None])
        return result

    # -- reading -------------------------------------------------------------------------
    def _already_processed(self, ids: list[str]) -> set[str]:
        seen: set[str] = set()
        for chunk in chunked(ids, IN_CHUNK):
            query = IntakeRecord.select(IntakeRecord.event_id).where(
                IntakeRecord.event_id.in_(list(chunk))
            )
            seen.update(row[0] for row in query.tuples())
        return seen

    def _lock_learners(self, names: list[str]) -> dict[str, tuple[int, tuple[Any, ...]]]:
        """The existing learners of these (sorted) names with their data; on PostgreSQL their
        rows stay locked until the transaction ends."""
        known: dict[str, tuple[int, tuple[Any, ...]]] = {}
        lock = is_postgres()
        for chunk in chunked(names, IN_CHUNK):
            query = Learner.select(
                Learner.id, Learner.username, Learner.email, Learner.name, Learner.lms_id,
                Learner.is_active,
            ).where(Learner.username.in_(list(chunk)))
            if lock:
                query = query.order_by(Learner.username).for_update("FOR NO KEY UPDATE")
            for lid, username, email, name, lms_id, active in query.tuples():
                known[username] = (lid, (email, name, lms_id, bool(active)))
        return known

    def _create_learners(
        self, names: list[str], events: list[Event], now: datetime
    ) -> dict[str, tuple[int, tuple[Any, ...]]]:
        """Insert the missing learners (a concurrent insert of the same name wins quietly) and
        lock them like `_lock_learners`."""
        latest = _latest_user_data(events)
        rows = [(n, *latest[n], to_db(now)) for n in names]
        fields = [Learner.username, Learner.email, Learner.name, Learner.lms_id,
                  Learner.is_active, Learner.updated_at]
        for chunk in chunked(rows, 100):
            Learner.insert_many(chunk, fields=fields).on_conflict_ignore().execute()
        return self._lock_learners(names)

    def _update_learners(
        self,
        events: list[Event],
        known: dict[str, tuple[int, tuple[Any, ...]]],
        now: datetime,
    ) -> dict[str, int]:
        """Keep each learner's data as the latest of these (processed) events says."""
        latest = _latest_user_data(events)
        names = list(latest)
        changed = [
            (*latest[n], to_db(now), known[n][0])
            for n in names
            if known[n][1] != latest[n]
        ]
        executemany(
            "UPDATE learner SET email = ?, name = ?, lms_id = ?, is_active = ?, updated_at = ? "
            "WHERE id = ?",
            changed,
        )
        return {n: known[n][0] for n in names}

    def _load_states(
        self, pairs: set[tuple[int, int]], matcher: Matcher
    ) -> dict[tuple[int, int], _State]:
        states: dict[tuple[int, int], _State] = {
            (lid, tid): _State(lid, matcher.templates[tid]) for lid, tid in pairs
        }
        if not pairs:
            return states
        learner_ids = sorted({lid for lid, _ in pairs})
        template_ids = sorted({tid for _, tid in pairs})
        by_progress: dict[int, _State] = {}
        for chunk in chunked(learner_ids, IN_CHUNK):
            query = Progress.select(
                Progress.id, Progress.learner, Progress.template, Progress.badge,
                Progress.fulfilled_groups, Progress.complete,
            ).where(Progress.learner.in_(list(chunk)) & Progress.template.in_(template_ids))
            for pid, lid, tid, badge_id, done, complete in query.tuples():
                state = states.get((lid, tid))
                if state is None:
                    continue
                state.progress_id = pid
                state.badge_id = badge_id
                state.groups_done = done
                state.complete = bool(complete)
                by_progress[pid] = state
        for chunk in chunked(list(by_progress), IN_CHUNK):
            query = Fulfillment.select(
                Fulfillment.id, Fulfillment.progress, Fulfillment.requirement,
                Fulfillment.event_id, Fulfillment.event_time,
            ).where(Fulfillment.progress.in_(list(chunk)))
            for fid, pid, rid, event_id, event_time in query.tuples():
                state = by_progress[pid]
                state.fulfilled[rid] = (fid, event_id, event_time)
                state.loaded_rows[rid] = fid
        return states

    # -- the rules of semantics.md -------------------------------------------------------
    def _fulfil(
        self,
        event: Event,
        learner_id: int,
        reqs: list[CompiledRequirement],
        states: dict[tuple[int, int], _State],
        effects: list[str],
        touched: list[_Badge],
        outbox: list[tuple[str, _Badge, dict[str, Any]]],
        now: datetime,
    ) -> None:
        by_template: dict[int, list[CompiledRequirement]] = {}
        for req in reqs:
            by_template.setdefault(req.template_id, []).append(req)
        event_time = to_db(event.time or now)
        for template_id, matched in by_template.items():
            state = states[(learner_id, template_id)]
            if state.holds_badge:
                continue  # a held badge's requirements are not re-evaluated
            added = [r for r in matched if r.id not in state.fulfilled]
            for req in added:
                state.fulfilled[req.id] = (None, event.id or "", event_time)
            if added:
                state.refresh()
                keys = ", ".join(r.key for r in added)
                effects.append(f"template {template_id}: fulfilled {keys}")
            if state.complete and self._may_award(state):
                badge = self._award(event, state, now)
                touched.append(badge)
                outbox.append((BADGE_AWARDED, badge, event.user or {}))
                effects.append(f"template {template_id}: awarded badge {badge.uuid}")

    def _penalise(
        self,
        event: Event,
        learner_id: int,
        pens: list[CompiledPenalty],
        states: dict[tuple[int, int], _State],
        effects: list[str],
        touched: list[_Badge],
        outbox: list[tuple[str, _Badge, dict[str, Any]]],
        now: datetime,
    ) -> None:
        for pen in pens:
            state = states[(learner_id, pen.template_id)]
            reset = [rid for rid in pen.requirement_ids if rid in state.fulfilled]
            for rid in reset:
                del state.fulfilled[rid]
            if reset:
                state.refresh()
                keys = ", ".join(
                    sorted(state.template.requirements[rid].key for rid in reset)
                )
                effects.append(f"template {pen.template_id}: penalty {pen.label} reset {keys}")
            if state.holds_badge and not state.complete:
                badge = self._revoke(event, state, pen, now)
                touched.append(badge)
                outbox.append((BADGE_REVOKED, badge, event.user or {}))
                effects.append(f"template {pen.template_id}: revoked badge {badge.uuid}")

    def _may_award(self, state: _State) -> bool:
        if self.reaward_after_revoke:
            return True
        if state.revoked_here:
            return False
        return not (
            Badge.select(Badge.id)
            .where(
                (Badge.learner == state.learner_id)
                & (Badge.template == state.template.id)
                & (Badge.status == "revoked")
            )
            .exists()
        )

    def _award(self, event: Event, state: _State, now: datetime) -> _Badge:
        tpl = state.template
        evidence = {
            "awarded": {
                "event_id": event.id,
                "requirements": [
                    {
                        "id": req.key,
                        "group": req.group,
                        "description": req.description,
                        "event_type": req.event_type,
                        "rules": [r.describe() for r in req.rules],
                        "event_id": state.fulfilled[req.id][1],
                        "event_time": iso(state.fulfilled[req.id][2]),
                    }
                    for req in tpl.requirements.values()
                    if req.id in state.fulfilled
                ],
            }
        }
        badge = _Badge(
            uuid=str(uuid.uuid4()),
            learner_id=state.learner_id,
            template=tpl,
            status="awarded",
            awarded_at=to_db(event.time or now),
            award_event_id=event.id or "",
            evidence=evidence,
            is_new=True,
        )
        state.badge = badge
        state.badge_id = None
        state.dirty = True
        return badge

    def _revoke(self, event: Event, state: _State, pen: CompiledPenalty, now: datetime) -> _Badge:
        badge = state.badge
        if badge is None:
            # A badge held from before this batch: its uuid names it in the intake effects.
            held_uuid = Badge.select(Badge.uuid).where(Badge.id == state.badge_id).scalar()
            badge = _Badge(uuid=held_uuid or "", learner_id=state.learner_id,
                           template=state.template, status="revoked", id=state.badge_id)
        badge.status = "revoked"
        badge.revoked_at = to_db(event.time or now)
        badge.revoke_event_id = event.id
        badge.revoke_reason = f"penalty {pen.label} matched event {event.id}"
        badge.revocation = {
            "event_id": event.id,
            "penalty": pen.description or f"#{pen.id}",
            "rules": [r.describe() for r in pen.rules],
            "reset": sorted(state.template.requirements[rid].key for rid in pen.requirement_ids),
        }
        state.badge = None
        state.badge_id = None
        state.dirty = True
        state.revoked_here = True
        return badge

    # -- writing -------------------------------------------------------------------------
    def _flush(
        self,
        states: dict[tuple[int, int], _State],
        touched: list[_Badge],
        outbox: list[tuple[str, _Badge, dict[str, Any]]],
        now: datetime,
    ) -> None:
        stamp = to_db(now)
        # Revocations first: a badge re-earned in this batch must not meet its held predecessor.
        old_revoked = list({id(b): b for b in touched if not b.is_new}.values())
        if old_revoked:
            self._revoke_existing(old_revoked, stamp)
        new_badges = [b for b in touched if b.is_new]
        if new_badges:
            unique_new = list({id(b): b for b in new_badges}.values())
            rows = [
                (
                    b.uuid, b.learner_id, b.template.id, b.status,
                    "cancelled" if b.status == "revoked" else "created",
                    b.awarded_at, b.award_event_id, b.revoked_at, b.revoke_event_id,
                    b.revoke_reason, _evidence(b), stamp, _expiry(b),
                )
                for b in unique_new
            ]
            insert_rows(Badge, _BADGE_FIELDS, rows)
            ids = self._ids_by_uuid([b.uuid for b in unique_new])
            for b in unique_new:
                b.id = ids[b.uuid]
            jobs = [
                (b.id, b.template.account_id, "issue",
                 "cancelled" if b.status == "revoked" else "queued", stamp, stamp, stamp)
                for b in unique_new
            ]
            insert_rows(DeliveryJob, _JOB_FIELDS, jobs)

        self._write_progress(states, stamp)

        events = []
        for event_type, badge, user in outbox:
            events.append(
                (str(uuid.uuid4()), event_type, badge.id,
                 json.dumps(badge_payload(badge.uuid, user, badge.template)),
                 badge.revoked_at if event_type == BADGE_REVOKED else badge.awarded_at)
            )
        insert_rows(OutgoingEvent, _OUTBOX_FIELDS, events)

    def _ids_by_uuid(self, uuids: list[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for chunk in chunked(uuids, IN_CHUNK):
            for bid, buuid in Badge.select(Badge.id, Badge.uuid).where(
                Badge.uuid.in_(list(chunk))
            ).tuples():
                ids[buuid] = bid
        return ids

    def _revoke_existing(self, badges: list[_Badge], stamp: datetime | None) -> None:
        by_id = {b.id: b for b in badges}
        stored: dict[int, Badge] = {}
        for chunk in chunked(sorted(by_id), IN_CHUNK):
            query = Badge.select(Badge.id, Badge.uuid, Badge.evidence, Badge.provider_state).where(
                Badge.id.in_(list(chunk)))
            if is_postgres():
                # A delivery worker recording this badge's issue waits, or is waited for: the
                # provider state read here is the one the revocation is decided on.
                query = query.order_by(Badge.id).for_update("FOR NO KEY UPDATE")
            stored.update({row.id: row for row in query})
        updates = []
        revoke_jobs = []
        for bid, badge in by_id.items():
            row = stored[bid]
            badge.uuid = row.uuid
            evidence = json.loads(row.evidence) if row.evidence else {}
            evidence["revoked"] = badge.revocation
            cancelled = stop_issue(bid, stamp)
            state = "cancelled" if cancelled else row.provider_state
            updates.append((
                "revoked", badge.revoked_at, badge.revoke_event_id, badge.revoke_reason,
                json.dumps(evidence), state, stamp, bid,
            ))
            if not cancelled:
                revoke_jobs.append((bid, badge.template.account_id, "revoke", "queued", stamp,
                                    stamp, stamp))
        executemany(
            "UPDATE badge SET status = ?, revoked_at = ?, revoke_event_id = ?, revoke_reason = ?, "
            "evidence = ?, provider_state = ?, updated_at = ? WHERE id = ?",
            updates,
        )
        insert_rows(DeliveryJob, _JOB_FIELDS, revoke_jobs)

    def _write_progress(
        self, states: dict[tuple[int, int], _State], stamp: datetime | None
    ) -> None:
        dirty = [s for s in states.values() if s.dirty]
        if not dirty:
            return
        for state in dirty:
            if state.badge is not None:
                state.badge_id = state.badge.id
        new = [s for s in dirty if s.progress_id is None]
        if new:
            rows = [
                (s.learner_id, s.template.id, s.groups_done, s.complete, s.badge_id, stamp)
                for s in new
            ]
            insert_rows(Progress, _PROGRESS_FIELDS, rows)
            wanted = {(s.learner_id, s.template.id): s for s in new}
            learner_ids = sorted({s.learner_id for s in new})
            template_ids = sorted({s.template.id for s in new})
            for chunk in chunked(learner_ids, IN_CHUNK):
                for pid, lid, tid in Progress.select(
                    Progress.id, Progress.learner, Progress.template
                ).where(
                    Progress.learner.in_(list(chunk)) & Progress.template.in_(template_ids)
                ).tuples():
                    state = wanted.get((lid, tid))
                    if state is not None:
                        state.progress_id = pid
        executemany(
            "UPDATE progress SET fulfilled_groups = ?, complete = ?, badge_id = ?, updated_at = ? "
            "WHERE id = ?",
            [
                (s.groups_done, s.complete, s.badge_id, stamp, s.progress_id)
                for s in dirty
                if s not in new
            ],
        )
        deletes: list[tuple[int]] = []
        inserts: list[tuple[Any, ...]] = []
        for state in dirty:
            for rid, row_id in state.loaded_rows.items():
                current = state.fulfilled.get(rid)
                if current is None or current[0] != row_id:
                    deletes.append((row_id,))
            for rid, (row_id, event_id, event_time) in state.fulfilled.items():
                if row_id is None:
                    inserts.append((state.progress_id, rid, event_id, event_time, stamp))
        executemany("DELETE FROM fulfillment WHERE id = ?", deletes)
        insert_rows(Fulfillment, _FULFILLMENT_FIELDS, inserts)

    def _record(
        self,
        event: Event,
        outcome: str,
        reason: str,
        source: str,
        now: datetime,
        *,
        claim: bool,
        effects: str = "",
    ) -> tuple[Any, ...]:
        payload = json.dumps(event.payload) if event.payload is not None else event.raw
        return (
            event.id if claim else None,
            event.id,
            event.event_type,
            outcome,
            reason,
            source,
            event.line,
            event.username,
            to_db(event.time),
            to_db(now),
            payload,
            effects,
        )


def _storable(event: Event) -> Event:
    """The event with its id and username as PostgreSQL stores them (a NUL becomes U+FFFD,
    see `pg_text`), so what is looked up matches what was written."""
    username = event.username
    if "\x00" not in (event.id or "") and "\x00" not in (username or ""):
        return event
    payload = event.payload
    if payload is not None and username is not None and "\x00" in username:
        user = event.user or {}
        payload = event.with_user({**user, "pii": {**user["pii"],
                                                   "username": pg_text(username)}})
    return replace(event, id=pg_text(event.id), payload=payload)


def _first_seen(events: list[Event], seen: set[str]) -> list[Event]:
    """The events `_apply` would process given `seen`: new ids, first occurrence only."""
    ids: set[str | None] = set(seen)
    out = []
    for event in events:
        if event.id not in ids:
            ids.add(event.id)
            out.append(event)
    return out


def _latest_user_data(events: list[Event]) -> dict[str, tuple[Any, ...]]:
    """Username -> (email, name, LMS id, active) from the last of these events that names it."""
    latest: dict[str, tuple[Any, ...]] = {}
    for event in events:
        user = event.user or {}
        pii = user.get("pii") or {}
        latest[pii["username"]] = (
            pii.get("email") or "",
            pii.get("name") or "",
            user.get("id"),
            bool(user.get("is_active", True)),
        )
    return latest


def _evidence(badge: _Badge) -> str:
    evidence = dict(badge.evidence or {})
    if badge.revocation:
        evidence["revoked"] = badge.revocation
    return json.dumps(evidence)


def _expiry(badge: _Badge) -> datetime | None:
    """The award's expiry from its template's lifetime (issue 13), else none."""
    days = badge.template.expires_in_days
    if not days or badge.awarded_at is None:
        return None
    return badge.awarded_at + timedelta(days=days)


def badge_payload(uuid: str, user: dict[str, Any], tpl: Any) -> dict[str, Any]:
    """BadgeData as openedx-events defines it (openedx-events.md §2, §7.3), from the event's
    `user` record and a template (a stored Template or a compiled one: the same fields)."""
    pii = user.get("pii") or {}
    return {
        "uuid": uuid,
        "user": {
            "id": user.get("id"),
            "is_active": bool(user.get("is_active", True)),
            "pii": {
                "username": pii.get("username", ""),
                "email": pii.get("email", ""),
                "name": pii.get("name", ""),
            },
        },
        "template": {
            "uuid": tpl.external_id,
            "origin": tpl.provider,
            "name": tpl.name or None,
            "description": tpl.description or None,
            "image_url": tpl.image_url or None,
        },
    }


def recompute_progress(template_ids: Sequence[int]) -> None:
    """Refresh the cached group counts after a template's requirements changed."""
    from badgetui.store.models import Requirement

    for tid in template_ids:
        total = (
            Requirement.select(fn.COUNT(fn.DISTINCT(Requirement.group)))
            .where(Requirement.template == tid)
            .scalar()
        ) or 0
        done = (
            Fulfillment.select(fn.COUNT(fn.DISTINCT(Requirement.group)))
            .join(Requirement, on=(Fulfillment.requirement == Requirement.id))
            .where(Fulfillment.progress == Progress.id)
        )
        Progress.update(fulfilled_groups=done).where(Progress.template == tid).execute()
        complete = (Progress.fulfilled_groups == total) if total else False
        Progress.update(complete=complete).where(Progress.template == tid).execute()


_RECORD_FIELDS = [
    IntakeRecord.event_id, IntakeRecord.ref_id, IntakeRecord.event_type, IntakeRecord.outcome,
    IntakeRecord.reason, IntakeRecord.source, IntakeRecord.line, IntakeRecord.username,
    IntakeRecord.event_time, IntakeRecord.received_at, IntakeRecord.payload, IntakeRecord.effects,
]
_BADGE_FIELDS = [
    Badge.uuid, Badge.learner, Badge.template, Badge.status, Badge.provider_state,
    Badge.awarded_at, Badge.award_event_id, Badge.revoked_at, Badge.revoke_event_id,
    Badge.revoke_reason, Badge.evidence, Badge.updated_at, Badge.expires_at,
]
_JOB_FIELDS = [
    DeliveryJob.badge, DeliveryJob.account, DeliveryJob.kind, DeliveryJob.state,
    DeliveryJob.next_attempt_at, DeliveryJob.created_at, DeliveryJob.updated_at,
]
_PROGRESS_FIELDS = [
    Progress.learner, Progress.template, Progress.fulfilled_groups, Progress.complete,
    Progress.badge, Progress.updated_at,
]
_FULFILLMENT_FIELDS = [
    Fulfillment.progress, Fulfillment.requirement, Fulfillment.event_id, Fulfillment.event_time,
    Fulfillment.fulfilled_at,
]
_OUTBOX_FIELDS = [
    OutgoingEvent.uuid, OutgoingEvent.event_type, OutgoingEvent.badge, OutgoingEvent.payload,
    OutgoingEvent.time,
]
