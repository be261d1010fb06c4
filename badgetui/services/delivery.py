"""Delivery: drain the durable issue/revoke jobs to the providers, exactly once at the provider.

- Jobs are claimed atomically with a lease (several workers may run; a killed worker's jobs are
  retaken when the lease ends). `attempts` is counted at claim time. On PostgreSQL the claim
  locks the picked jobs and their badges (FOR NO KEY UPDATE ... SKIP LOCKED): workers never
  wait on each other, never take the same job or run two jobs of one badge, and pass over a
  badge that a batch is revoking right now.
- Outcomes write the badge, then the job: the order processing locks them in, so a worker and
  a batch cannot deadlock; a conflict PostgreSQL aborts anyway is retried.
- Retryable failures back off exponentially with jitter, honouring Retry-After. Auth failures
  pause the account and say so. Permanent failures leave the job failed with the message.
- An issue is never repeated blindly: any attempt after the first, and any duplicate answer,
  looks the badge up at the provider first and adopts what exists (Credly by
  `issuer_earner_id`, Accredible by recipient email in the group).
- A revoke waits while its badge's issue is in flight; a re-award waits for the revoke of its
  predecessor, so the provider never sees two live badges for one learner and template.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from badgetui.domain.secrets import mask
from badgetui.providers.accredible import AccredibleClient
from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import AuthError, ProviderError, RetryableError
from badgetui.services.accounts import Connections
from badgetui.services.common import (
    Clock,
    current_database,
    from_db,
    in_transaction,
    is_postgres,
    to_db,
)
from badgetui.services.provider_jobs import JobView as _Job
from badgetui.services.provider_jobs import Outcome, ProviderJobs, UnpublishedError
from badgetui.settings import Settings
from badgetui.store.models import Badge, DeliveryJob, ProviderAccount

Sleep = Callable[[float], Awaitable[None]]


class StopFlag(Protocol):
    """asyncio.Event or threading.Event: all `run` needs is to ask."""

    def is_set(self) -> bool: ...

#: Jobs in flight over all accounts (each account is also held to its own concurrency).
MAX_IN_FLIGHT = 256

#: Due jobs, oldest first, skipping paused accounts, revokes whose issue is in flight, and
#: issues whose learner+template still has a revoke to deliver.
_DUE_SQL = """
SELECT j.id, j.account_id, j.badge_id FROM delivery_job j
JOIN provider_account a ON a.id = j.account_id
JOIN badge b ON b.id = j.badge_id
WHERE j.state = 'queued' AND j.next_attempt_at <= ? AND a.paused_reason = ''
  AND NOT EXISTS (
        SELECT 1 FROM delivery_job o WHERE o.badge_id = j.badge_id AND o.id <> j.id
        AND o.state = 'running')
  AND NOT (j.kind = 'issue' AND EXISTS (
        SELECT 1 FROM badge rb CROSS JOIN delivery_job r
        WHERE rb.learner_id = b.learner_id AND +rb.template_id = b.template_id
        AND rb.id <> b.id AND r.badge_id = rb.id
        AND r.kind = 'revoke' AND r.state IN ('queued', 'running')))
ORDER BY j.next_attempt_at, j.id
LIMIT ?
"""
#: PostgreSQL: lock the picked jobs and their badges; rows another worker (or a batch revoking
#: the badge) holds are passed over rather than waited for. Only what will be taken is locked.
_LOCK_SQL = """
SELECT j.id FROM delivery_job j JOIN badge b ON b.id = j.badge_id
WHERE j.id IN ({marks}) AND j.state = 'queued'
FOR NO KEY UPDATE OF j, b SKIP LOCKED
"""
#: PostgreSQL, once those locks are held: which of them has a sibling job running (claimed by a
#: worker that committed after the candidates were read; a worker still claiming holds the
#: badge's lock and was skipped above).
_SIBLING_RUNNING_SQL = """
SELECT j.id FROM delivery_job j
WHERE j.id IN ({marks}) AND EXISTS (
    SELECT 1 FROM delivery_job o WHERE o.badge_id = j.badge_id AND o.id <> j.id
    AND o.state = 'running')
"""
# Performance: the revoke check starts from the learner's few badges (index on learner_id; the
# unary `+` keeps SQLite off the template index, which every badge of a template shares, and
# CROSS JOIN keeps that order) instead of scanning every queued job for each candidate. The
# rows come in index order, so a claim that stops reading early pays only for what it read.


# The statements run for every job, written once (Peewee would rebuild the SQL each time, a
# large share of a job's CPU when calls take 50 ms and 16 are in flight); the same SQL
# Peewee generates for the equivalent queries.
_ACCOUNTS_SQL = 'SELECT "id" FROM "provider_account" WHERE "paused_reason" = \'\''
_TAKE_SQL = (
    'UPDATE "delivery_job" SET "state" = \'running\', "attempts" = "attempts" + 1, '
    '"lease_until" = ?, "updated_at" = ? WHERE "id" = ? AND "state" = \'queued\''
)
_LOAD_SQL = """
SELECT j.id, j.kind, j.attempts, j.account_id, a.provider, b.id, b.uuid, b.status,
       b.external_id, b.awarded_at, b.revoke_reason, t.external_id, l.username, l.email,
       l.name, l.lms_id, b.expires_at, b.evidence
FROM delivery_job j
JOIN provider_account a ON j.account_id = a.id
JOIN badge b ON j.badge_id = b.id
JOIN template t ON b.template_id = t.id
JOIN learner l ON b.learner_id = l.id
WHERE j.id IN ({marks})
"""
_JOB_DONE_SQL = (
    'UPDATE "delivery_job" SET "state" = \'done\', "last_error" = \'\', "updated_at" = ?, '
    '"lease_until" = NULL WHERE "id" = ?'
)
_BADGE_DONE_SQL = (
    'UPDATE "badge" SET "provider_state" = ?, "last_error" = \'\', "updated_at" = ? '
    'WHERE "id" = ?'
)
_BADGE_DONE_EXTERNAL_SQL = (
    'UPDATE "badge" SET "provider_state" = ?, "external_id" = ?, "provider_expires_on" = ?, '
    '"last_error" = \'\', "updated_at" = ? WHERE "id" = ?'
)


def _execute(sql: str, params: tuple[Any, ...] = ()) -> Any:
    """Run raw SQL written with `?` on the bound database; datetimes stored as Peewee does."""
    database = current_database()
    if database.param != "?":
        sql = sql.replace("?", database.param)
    else:
        params = tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in params)
    return database.execute_sql(sql, params)


@dataclass(slots=True)
class DeliveryReport:
    counts: Counter[str] = field(default_factory=Counter)
    paused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    last_progress: datetime | None = None
    gave_up: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**{k: self.counts.get(k, 0) for k in
                   ("issued", "adopted", "revoked", "retried", "failed", "cancelled",
                    "unpublished")},
                "paused": self.paused, "errors": self.errors[:50], "still_queued": self.gave_up}


class DeliveryService:
    def __init__(
        self,
        clock: Clock,
        connections: Connections,
        settings: Settings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.connections = connections
        self.settings = settings
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.provider_jobs = ProviderJobs(lambda: self.clock().date(), self._owned_elsewhere)

    # -- queue management ----------------------------------------------------------------
    def retry_failed(self, badge_id: int | None = None) -> int:
        """Put failed jobs (of one badge, or all) back in the queue (the operator's "retry")."""
        now = to_db(self.clock())
        where = DeliveryJob.state == "failed"
        if badge_id is not None:
            where &= DeliveryJob.badge == badge_id
        return DeliveryJob.update(state="queued", next_attempt_at=now, updated_at=now).where(
            where).execute()

    def recover_leases(self) -> int:
        """Jobs left running by a worker that died go back to the queue."""
        now = to_db(self.clock())
        return DeliveryJob.update(state="queued", lease_until=None, updated_at=now).where(
            (DeliveryJob.state == "running") & (DeliveryJob.lease_until < now)
        ).execute()

    def pending(self) -> int:
        return (
            DeliveryJob.select().join(ProviderAccount)
            .where((DeliveryJob.state.in_(["queued", "running"]))
                   & (ProviderAccount.paused_reason == ""))
            .count()
        )

    def _next_due(self) -> datetime | None:
        row = (
            DeliveryJob.select(DeliveryJob.next_attempt_at).join(ProviderAccount)
            .where((DeliveryJob.state == "queued") & (ProviderAccount.paused_reason == ""))
            .order_by(DeliveryJob.next_attempt_at).first()
        )
        return from_db(row.next_attempt_at) if row else None

    def _claim(self, free: dict[int, int], default_free: int, limit: int) -> list[_Job]:
        """Atomically take due jobs within each account's free slots."""
        now = self.clock()
        database = current_database()
        lease = to_db(now + timedelta(seconds=self.settings.delivery_lease))
        taken: list[int] = []
        badges: set[int] = set()
        accounts = [a for (a,) in _execute(_ACCOUNTS_SQL).fetchall()]
        locking = is_postgres(database)
        while True:
            # Only due jobs of unpaused accounts are read, so once every such account is full
            # (or `limit` is reached) no further row could be taken: stop reading there rather
            # than evaluate up to `limit * 4` candidates on every call (one per finished job).
            room = min(limit - len(taken),
                       sum(max(free.get(a, default_free), 0) for a in accounts))
            if room <= 0:
                break
            # Read outside any transaction; then take what was picked in one (SQLite: under
            # the write lock, where the conditional UPDATE settles races).
            picked = self._pick(now, limit, room, free, default_free, badges)
            if not picked:
                break
            with database.atomic():  # one commit for the batch, not one per job
                mine = self._lock(picked) if locking else picked
                lost = self._take(mine, lease, now, free, default_free, taken)
            if not lost and len(mine) == len(picked):
                break
        return self._load(taken)

    def _pick(
        self,
        now: datetime,
        limit: int,
        room: int,
        free: dict[int, int],
        default_free: int,
        badges: set[int],
    ) -> list[tuple[int, int]]:
        """Due (job, account) pairs within each account's free slots, one job per badge."""
        picked: list[tuple[int, int]] = []
        wanted = dict(free)
        cursor = _execute(_DUE_SQL, (to_db(now), limit * 4))
        try:
            for job_id, account_id, badge_id in cursor:
                if wanted.get(account_id, default_free) <= 0:
                    continue
                if badge_id in badges:
                    continue  # a badge's issue and revoke never run side by side
                badges.add(badge_id)
                picked.append((job_id, account_id))
                wanted[account_id] = wanted.get(account_id, default_free) - 1
                if len(picked) >= room:
                    break
        finally:
            cursor.close()
        return picked

    def _lock(self, picked: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """PostgreSQL: the picked jobs this worker now holds, and may run (see _LOCK_SQL)."""
        ids = tuple(job_id for job_id, _ in picked)
        marks = ", ".join("?" for _ in ids)
        held = {job_id for (job_id,) in _execute(_LOCK_SQL.format(marks=marks), ids).fetchall()}
        if held:
            busy = tuple(sorted(held))
            held -= {job_id for (job_id,) in _execute(
                _SIBLING_RUNNING_SQL.format(marks=", ".join("?" for _ in busy)), busy).fetchall()}
        return [(job_id, account_id) for job_id, account_id in picked if job_id in held]

    def _take(
        self,
        picked: list[tuple[int, int]],
        lease: datetime | None,
        now: datetime,
        free: dict[int, int],
        default_free: int,
        taken: list[int],
    ) -> bool:
        """Mark the picked jobs running; True when another worker took one of them first."""
        lost = False
        for job_id, account_id in picked:
            claimed = _execute(_TAKE_SQL, (lease, to_db(now), job_id)).rowcount
            if claimed:
                taken.append(job_id)
                free[account_id] = free.get(account_id, default_free) - 1
            else:
                lost = True  # another worker took it: look further, as before
        return lost

    def _load(self, ids: list[int]) -> list[_Job]:
        if not ids:
            return []
        rows = _execute(_LOAD_SQL.format(marks=", ".join("?" for _ in ids)), tuple(ids))
        return [_Job(*row[:9], from_db(row[9]), *row[10:16], from_db(row[16]), row[17] or "")
                for row in rows.fetchall()]

    # -- the worker ----------------------------------------------------------------------
    async def run(
        self,
        *,
        until_idle: bool = True,
        stop: StopFlag | None = None,
        on_progress: Callable[[DeliveryReport], None] | None = None,
    ) -> DeliveryReport:
        """Deliver due jobs. With `until_idle`, returns once no job of an unpaused account is
        queued or running (waiting out backoff delays); otherwise runs until `stop` is set.
        `stop` is read between steps (at least once a second), so a `threading.Event` set by
        another thread (a quitting console, a consumer's signal handler) ends the run too;
        jobs in flight are abandoned and retaken when their lease ends."""
        report = DeliveryReport(last_progress=self.clock())
        concurrency = self.settings.delivery_concurrency
        clients: dict[int, CredlyClient | AccredibleClient] = {}
        in_flight: dict[asyncio.Task[None], int] = {}
        self.recover_leases()
        try:
            while not (stop and stop.is_set()):
                busy = Counter(in_flight.values())
                free = {acc: concurrency - n for acc, n in busy.items()}
                room = MAX_IN_FLIGHT - len(in_flight)
                jobs = self._claim(free, concurrency, room) if room > 0 else []
                for job in jobs:
                    client = clients.get(job.account_id)
                    if client is None:
                        account = ProviderAccount.get_by_id(job.account_id)
                        client = self.connections.for_account(account,
                                                              max_connections=concurrency)
                        clients[job.account_id] = client
                    task = asyncio.create_task(self._deliver(client, job, report))
                    in_flight[task] = job.account_id
                report.max_in_flight = max(report.max_in_flight, len(in_flight))
                if in_flight:
                    done, _ = await asyncio.wait(in_flight, timeout=0.25,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        in_flight.pop(task)
                        task.result()
                    if on_progress:
                        on_progress(report)
                    continue
                if until_idle:
                    self.recover_leases()
                    nxt = self._next_due()
                    if nxt is None and not self._running_elsewhere():
                        break
                    now = self.clock()
                    wait = 0.2 if nxt is None else (nxt - now).total_seconds()
                    stalled = (now - report.last_progress).total_seconds()
                    if wait > self.settings.delivery_max_wait or (
                        stalled > self.settings.delivery_stall
                    ):
                        report.gave_up = self.pending()
                        break
                    await self.sleep(min(max(wait, 0.01), 1.0))
                else:
                    await self.sleep(0.25)
        finally:
            for task in in_flight:
                task.cancel()
            for client in clients.values():
                await client.aclose()
        return report

    def _running_elsewhere(self) -> bool:
        return (
            DeliveryJob.select().join(ProviderAccount)
            .where((DeliveryJob.state == "running") & (ProviderAccount.paused_reason == ""))
            .exists()
        )

    async def _deliver(
        self, client: CredlyClient | AccredibleClient, job: _Job, report: DeliveryReport
    ) -> None:
        if job.kind == "issue" and job.badge_status == "revoked":
            # Revoked while this issue waited (e.g. after its worker died): never issue it now;
            # the revoke job looks up and revokes anything an earlier attempt created.
            self._cancel(job, report)
            return
        try:
            if job.kind == "issue":
                outcome = await self.provider_jobs.issue(client, job)
            else:
                outcome = await self.provider_jobs.revoke(client, job)
        except RetryableError as exc:
            self._retry(job, exc, report)
        except AuthError as exc:
            self._pause(job, exc, report)
        except UnpublishedError as exc:
            self._unpublished(job, exc, report)
        except ProviderError as exc:
            self._fail(job, exc, report)
        else:
            self._done(job, outcome, report)

    def _owned_elsewhere(self, badge_id: int, external_id: str) -> bool:
        """The provider badge already belongs to another held badge of ours."""
        return (
            Badge.select().where((Badge.external_id == external_id) & (Badge.id != badge_id)
                                 & (Badge.status == "awarded")).exists()
        )

    # -- outcomes ------------------------------------------------------------------------
    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        base = self.settings.delivery_base_delay * (2 ** max(attempts - 1, 0))
        delay = min(self.settings.delivery_max_delay, base) * self.rng.uniform(0.8, 1.2)
        return max(delay, retry_after or 0.0)

    def _retry(self, job: _Job, exc: RetryableError, report: DeliveryReport) -> None:
        now = self.clock()
        delay = self._backoff(job.attempts, exc.retry_after)
        message = f"attempt {job.attempts} failed: {exc.message}; retry in {delay:.1f} s"

        def write() -> None:
            where = Badge.id == job.badge_id
            if job.kind == "issue":
                where &= Badge.external_id.is_null()  # a delivered badge keeps its state
            Badge.update(provider_state="error", last_error=message, updated_at=to_db(now)).where(
                where).execute()
            DeliveryJob.update(
                state="queued", next_attempt_at=to_db(now + timedelta(seconds=delay)),
                last_error=message, lease_until=None, updated_at=to_db(now),
            ).where(DeliveryJob.id == job.id).execute()

        in_transaction(write)
        report.counts["retried"] += 1

    def _pause(self, job: _Job, exc: AuthError, report: DeliveryReport) -> None:
        now = to_db(self.clock())
        account = ProviderAccount.get_by_id(job.account_id)
        reason = (f"{account.provider} refused the API key {mask(account.api_key)} "
                  f"({exc.message}); delivery paused until the key is fixed")

        def write() -> None:
            ProviderAccount.update(paused_reason=reason).where(
                ProviderAccount.id == job.account_id).execute()
            Badge.update(last_error=reason, updated_at=now).where(
                Badge.id == job.badge_id).execute()
            DeliveryJob.update(state="queued", attempts=DeliveryJob.attempts - 1,
                               last_error=reason, lease_until=None, updated_at=now).where(
                DeliveryJob.id == job.id).execute()

        in_transaction(write)
        if reason not in report.paused:
            report.paused.append(reason)
        report.last_progress = self.clock()

    def _fail(self, job: _Job, exc: ProviderError, report: DeliveryReport) -> None:
        self._failed(job, f"{job.kind} failed: {exc.message}", report, "failed",
                     provider_state="error")

    def _failed(self, job: _Job, message: str, report: DeliveryReport, count: str,
                **badge: Any) -> None:
        """The job ends failed (the operator's retry requeues it) and the badge says why."""
        now = to_db(self.clock())

        def write() -> None:
            Badge.update(**badge, last_error=message, updated_at=now).where(
                Badge.id == job.badge_id).execute()
            DeliveryJob.update(state="failed", last_error=message, lease_until=None,
                               updated_at=now).where(DeliveryJob.id == job.id).execute()

        in_transaction(write)
        report.counts[count] += 1
        report.last_progress = self.clock()
        report.errors.append(f"badge {job.badge_uuid}: {message}")

    def _cancel(self, job: _Job, report: DeliveryReport) -> None:
        now = to_db(self.clock())
        in_transaction(lambda: DeliveryJob.update(
            state="cancelled", lease_until=None, updated_at=now).where(
            DeliveryJob.id == job.id).execute())
        report.counts["cancelled"] += 1
        report.last_progress = self.clock()

    def _done(self, job: _Job, outcome: Outcome, report: DeliveryReport) -> None:
        now = to_db(self.clock())

        def write() -> None:
            if outcome.external_id:
                _execute(_BADGE_DONE_EXTERNAL_SQL, (outcome.state, outcome.external_id,
                                                    outcome.expires_on, now, job.badge_id))
            else:
                _execute(_BADGE_DONE_SQL, (outcome.state, now, job.badge_id))
            _execute(_JOB_DONE_SQL, (now, job.id))

        in_transaction(write)
        report.counts[outcome.how] += 1
        report.last_progress = self.clock()

    def _unpublished(self, job: _Job, exc: UnpublishedError, report: DeliveryReport) -> None:
        """Created at Accredible but not published: recorded with its id, the job failed so
        the operator's retry (or re-send) publishes it; never counted as delivered."""
        self._failed(job, f"{job.kind} not delivered: {exc.message}", report, "unpublished",
                     provider_state="unpublished", external_id=exc.external_id,
                     provider_expires_on=exc.expires_on)
