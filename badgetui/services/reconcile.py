"""Reconcile: compare what the provider holds with what badgetui holds, and fix the drift.

Why: Accredible has no webhooks, and a Credly webhook can be missed; a credential expired or
deleted in the provider's dashboard, a badge left unpublished, or an issue job lost with a dead
worker would otherwise go unnoticed. `reconcile` pages every credential (badge) of each synced
group (template) that is active or has badges here, and sorts what differs:

| drift | here | there | fix |
|---|---|---|---|
| missing | awarded, with an id | gone (confirmed by a GET: a search index may lag) | re-issue |
| live_there | revoked | still live | queue the revoke |
| revoked_there | awarded | revoked, replaced, expired | record it (status stays) |
| unpublished | awarded | created but not published | record it |
| state | awarded | live, in another state than recorded | record it |
| stuck | awarded, never delivered, no job on its way | - | requeue (looks up first) |
| unknown | nothing | a credential badgetui did not issue | report only |

Every fix goes through the durable delivery queue or a conditional update, so a delivery
running at the same time is never undone: a row that changed since it was read is left alone.
The provider's own answer is never trusted for identity: rows are re-checked by the clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from badgetui.providers.accredible import AccredibleClient, AccredibleCredential
from badgetui.providers.credly import CredlyBadge, CredlyClient
from badgetui.providers.errors import PermanentError, ProviderError
from badgetui.providers.http import gather_all
from badgetui.services.accounts import Connections, provider_failure
from badgetui.services.common import Clock, ServiceError, current_database, to_db
from badgetui.services.provider_jobs import CREDLY_DEAD_STATES
from badgetui.services.templates import TemplateService, audit
from badgetui.store.models import Badge, DeliveryJob, Learner, ProviderAccount, Template

#: Templates paged at once per account (each is one or more list requests).
TEMPLATE_CONCURRENCY = 8
DRIFT_KINDS = ("missing", "live_there", "revoked_there", "unpublished", "state", "stuck",
               "unknown")
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Remote:
    """One provider credential or badge, in the terms reconcile compares."""

    external_id: str
    email: str
    earner_id: str | None
    state: str  # pending, accepted, rejected, revoked, replaced, expired, unpublished
    live: bool
    expires_on: str | None = None
    #: Unknown publication (an Accredible search row that does not say): check before use.
    approve_unknown: bool = False


@dataclass(slots=True)
class Drift:
    kind: str
    account: str
    template: str
    external_id: str | None
    badge_id: int | None = None
    username: str | None = None
    here: str = ""
    there: str = ""
    action: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ReconcileReport:
    dry_run: bool
    accounts: list[str] = field(default_factory=list)
    templates: int = 0
    remote: int = 0
    local: int = 0
    drifts: list[Drift] = field(default_factory=list)
    fixed: int = 0
    #: Drifts a run without --dry-run would fix (report-only ones excluded).
    fixable: int = 0
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = {kind: 0 for kind in DRIFT_KINDS}
        for drift in self.drifts:
            found[drift.kind] += 1
        return found

    def summary(self) -> str:
        drift = ", ".join(f"{n} {k}" for k, n in self.counts().items() if n) or "no drift"
        verb = "would fix" if self.dry_run else "fixed"
        fixed = self.fixable if self.dry_run else self.fixed
        text = (f"{len(self.accounts)} account(s), {self.templates} template(s), "
                f"{self.remote} at the provider, {self.local} here: {drift}; {verb} {fixed}")
        if self.errors:
            text += f"; {len(self.errors)} account(s) failed"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "accounts": self.accounts,
                "templates": self.templates, "remote": self.remote, "local": self.local,
                "counts": self.counts(), "fixed": self.fixed, "fixable": self.fixable,
                "errors": self.errors,
                "drifts": [d.as_dict() for d in self.drifts]}


@dataclass(slots=True)
class _Local:
    id: int
    account_id: int
    status: str
    provider_state: str
    external_id: str | None
    expires_on: str | None
    username: str
    email: str
    template_id: int
    template: str


def _credly_remote(badge: CredlyBadge) -> Remote:
    return Remote(badge.id, badge.recipient_email, badge.issuer_earner_id, badge.state,
                  badge.state not in CREDLY_DEAD_STATES)


def _accredible_remote(cred: AccredibleCredential, today: date) -> Remote:
    live = cred.live_on(today)
    state = ("expired" if not live else "unpublished" if cred.approve is False
             else "accepted")
    return Remote(str(cred.id), cred.email, cred.recipient_id, state, live,
                  cred.expired_on[:10] if cred.expired_on else None,
                  approve_unknown=live and cred.approve is None)


class ReconcileService:
    def __init__(self, clock: Clock, connections: Connections,
                 templates: TemplateService) -> None:
        self.clock = clock
        self.connections = connections
        self.templates = templates

    async def reconcile(
        self, account_ref: str | int | None = None, *, dry_run: bool = False,
        all_templates: bool = False, on_progress: Progress | None = None,
    ) -> ReconcileReport:
        """Reconcile one account or all of them; an account that fails does not stop the
        others (its one-line reason is in `errors`). Templates paged: active ones and those
        with badges here, or every synced one with `all_templates`."""
        accounts = ([self.templates.account(account_ref)] if account_ref is not None
                    else list(ProviderAccount.select().order_by(ProviderAccount.id)))
        if not accounts:
            raise ServiceError("no provider accounts: add one with `badgetui provider add`")
        report = ReconcileReport(dry_run)
        for account in accounts:
            report.accounts.append(_label(account))
            try:
                await self._account(account, report, dry_run, all_templates, on_progress)
            except ProviderError as exc:
                provider = account.provider.capitalize()
                failure = provider_failure(provider, _label(account), account.api_key, exc,
                                           client_id=account.client_id)
                report.errors.append(str(failure))
        return report

    # -- one account ---------------------------------------------------------------------
    async def _account(self, account: ProviderAccount, report: ReconcileReport, dry_run: bool,
                       all_templates: bool, on_progress: Progress | None) -> None:
        templates = _templates(account, all_templates)
        report.templates += len(templates)
        local = _local_badges(account, [t.id for t in templates])
        report.local += len(local)
        client = self.connections.for_account(account)
        async with client:
            remote = await self._remote(client, templates, on_progress)
            report.remote += sum(len(rows) for rows in remote.values())
            drifts = await self._compare(client, account, templates, local, remote)
        for drift, fix in drifts:
            report.fixable += fix is not None
            if not dry_run and fix is not None and fix():
                report.fixed += 1
            elif not dry_run and fix is not None:
                drift.action = "left alone: it changed meanwhile"
            report.drifts.append(drift)

    async def _remote(self, client: CredlyClient | AccredibleClient, templates: list[Any],
                      on_progress: Progress | None) -> dict[str, list[Remote]]:
        limit = asyncio.Semaphore(TEMPLATE_CONCURRENCY)
        done = 0
        today = self.clock().date()

        async def one(external_id: str) -> tuple[str, list[Remote]]:
            nonlocal done
            async with limit:
                if isinstance(client, CredlyClient):
                    rows = [_credly_remote(b) for b in await client.template_badges(external_id)]
                else:
                    creds = await client.group_credentials(int(external_id))
                    rows = [_accredible_remote(c, today) for c in creds]
            done += 1
            if on_progress is not None:
                on_progress(done, len(templates))
            return external_id, rows

        pairs = await gather_all([one(t.external_id) for t in templates])
        return dict(pairs)

    async def _compare(
        self, client: CredlyClient | AccredibleClient, account: ProviderAccount,
        templates: list[Any], local: list[_Local], remote: dict[str, list[Remote]],
    ) -> list[tuple[Drift, Callable[[], bool] | None]]:
        label = _label(account)
        provider = account.provider.capitalize()
        on_way = _jobs_on_their_way(account.id)
        by_id = {b.external_id: b for b in local if b.external_id}
        by_template: dict[int, list[_Local]] = {}
        for local_badge in local:
            by_template.setdefault(local_badge.template_id, []).append(local_badge)
        out: list[tuple[Drift, Callable[[], bool] | None]] = []
        for template in templates:
            rows = remote.get(template.external_id, [])
            seen = {r.external_id for r in rows}
            mine = by_template.get(template.id, [])
            # Never delivered here: a credential of theirs there is the stuck badge's own.
            undelivered = {b.email.lower() for b in mine
                           if b.status == "awarded" and not b.external_id}
            for row in rows:
                badge = by_id.get(row.external_id)
                if badge is None or badge.template_id != template.id:
                    if row.email.lower() not in undelivered:
                        out.append((Drift("unknown", label, template.external_id,
                                          row.external_id, there=f"{row.state} ({row.email})",
                                          action="reported only: not issued by badgetui"),
                                    None))
                    continue
                if row.approve_unknown and badge.provider_state == "unpublished":
                    row = await self._fetch(client, row)
                found = self._against(label, provider, template.external_id, badge, row, on_way)
                if found is not None:
                    out.append(found)
            for badge in mine:
                if badge.status != "awarded":
                    continue
                if badge.external_id and badge.external_id not in seen:
                    found = await self._missing(client, label, provider, template.external_id,
                                                badge, on_way)
                    if found is not None:
                        out.append(found)
                elif not badge.external_id and badge.id not in on_way:
                    candidates = [r.external_id for r in rows
                                  if r.email.lower() == badge.email.lower()]
                    there = (f"{provider} holds {', '.join(candidates)} for "
                             f"{badge.email}" if candidates else "nothing")
                    out.append((self._drift("stuck", label, template.external_id, badge,
                                            there=there,
                                            action="requeued: delivery looks it up first"),
                                lambda b=badge: self._requeue(b, None)))
        return out

    def _drift(self, kind: str, label: str, template: str, badge: _Local, *, there: str,
               action: str, external_id: str | None = None) -> Drift:
        return Drift(kind, label, template, external_id or badge.external_id, badge.id,
                     badge.username, here=f"{badge.status}/{badge.provider_state}",
                     there=there, action=action)

    def _against(self, label: str, provider: str, template: str, badge: _Local, row: Remote,
                 on_way: dict[int, set[str]]) -> tuple[Drift, Callable[[], bool] | None] | None:
        """One badge here against its credential there."""
        jobs = on_way.get(badge.id, set())
        if badge.status == "revoked":
            if row.live and "revoke" not in jobs:
                return (self._drift("live_there", label, template, badge, there=row.state,
                                    action="queued the revoke"),
                        lambda: self._queue_revoke(badge))
            return None
        if "issue" in jobs or "revoke" in jobs:
            return None  # a delivery is about to change it anyway
        if not row.live:
            if badge.provider_state == row.state and badge.expires_on == row.expires_on:
                return None
            note = (f"{row.state} at {provider}" +
                    (f" on {row.expires_on}" if row.expires_on else "") +
                    f" (still awarded here; `badgetui badges resend {badge.id}` restores it)")
            return (self._drift("revoked_there", label, template, badge, there=row.state,
                                action=f"recorded {row.state}"),
                    lambda: self._record(badge, row, note))
        if row.state == "unpublished":
            if badge.provider_state == "unpublished":
                return None
            note = (f"unpublished at {provider} (out of credits?): add credits, then "
                    f"`badgetui badges resend {badge.id}` publishes it")
            return (self._drift("unpublished", label, template, badge, there=row.state,
                                action="recorded unpublished"),
                    lambda: self._record(badge, row, note))
        if badge.provider_state == row.state and badge.expires_on == row.expires_on:
            return None
        return (self._drift("state", label, template, badge, there=row.state,
                            action=f"recorded {row.state}"),
                lambda: self._record(badge, row, "", delivered=True))

    async def _missing(self, client: CredlyClient | AccredibleClient, label: str,
                       provider: str, template: str, badge: _Local,
                       on_way: dict[int, set[str]]
                       ) -> tuple[Drift, Callable[[], bool] | None] | None:
        """An awarded badge whose id the listing did not return: gone only if a GET says
        so (a search index may lag behind a fresh credential)."""
        if on_way.get(badge.id):
            return None
        assert badge.external_id is not None
        try:
            if isinstance(client, CredlyClient):
                held = await client.badge(badge.external_id)
                elsewhere = held.badge_template_id
            else:
                cred = await client.credential(int(badge.external_id))
                elsewhere = str(cred.group_id)
        except PermanentError as exc:
            if exc.status != 404:
                raise
            note = f"not found at {provider} (deleted there?): re-issued by reconcile"
            return (self._drift("missing", label, template, badge, there="not found",
                                action="queued a re-issue"),
                    lambda: self._requeue(badge, note))
        if elsewhere == template:
            return None  # there after all: the listing lagged
        return (self._drift("revoked_there", label, template, badge,
                            there=f"moved to {elsewhere}",
                            action="reported only: moved to another template there"), None)

    async def _fetch(self, client: CredlyClient | AccredibleClient, row: Remote) -> Remote:
        assert isinstance(client, AccredibleClient)
        return _accredible_remote(await client.credential(int(row.external_id)),
                                  self.clock().date())

    # -- fixes: conditional on the row being as it was read --------------------------------
    def _unchanged(self, badge: _Local) -> Any:
        return ((Badge.id == badge.id) & (Badge.status == badge.status)
                & (Badge.provider_state == badge.provider_state)
                & (Badge.external_id == badge.external_id if badge.external_id
                   else Badge.external_id.is_null()))

    def _record(self, badge: _Local, row: Remote, note: str, *, delivered: bool = False) -> bool:
        now = to_db(self.clock())
        values: dict[str, Any] = {"provider_state": row.state, "updated_at": now,
                                  "provider_expires_on": row.expires_on}
        if note or delivered:
            values["last_error"] = note
        with current_database().atomic():
            if not Badge.update(**values).where(self._unchanged(badge)).execute():
                return False
            if delivered:
                # Published or accepted at last (e.g. credits added in the dashboard): the
                # issue that failed on it is done.
                DeliveryJob.update(state="done", last_error="", updated_at=now).where(
                    (DeliveryJob.badge == badge.id) & (DeliveryJob.kind == "issue")
                    & (DeliveryJob.state == "failed")).execute()
            self._audit(badge, {"from": badge.provider_state, "to": row.state,
                                "expires_on": row.expires_on})
        return True

    def _requeue(self, badge: _Local, note: str | None) -> bool:
        """Queue an issue that looks the badge up first (attempts=1: the claim makes it 2)."""
        now = to_db(self.clock())
        with current_database().atomic():
            if _on_the_way(badge.id):
                return False
            values: dict[str, Any] = {"updated_at": now}
            if note is not None:
                values.update(external_id=None, provider_state="created", last_error=note,
                              provider_expires_on=None)
            if not Badge.update(**values).where(self._unchanged(badge)).execute():
                return False
            failed = DeliveryJob.update(state="queued", next_attempt_at=now, attempts=1,
                                        updated_at=now, lease_until=None).where(
                (DeliveryJob.badge == badge.id) & (DeliveryJob.kind == "issue")
                & (DeliveryJob.state.in_(["failed", "done"]))).execute()
            if not failed:
                DeliveryJob.create(badge=badge.id, account=badge.account_id, kind="issue",
                                   state="queued", attempts=1, next_attempt_at=now,
                                   created_at=now, updated_at=now)
            self._audit(badge, {"requeued": "issue", "why": note or "never delivered"})
        return True

    def _queue_revoke(self, badge: _Local) -> bool:
        now = to_db(self.clock())
        with current_database().atomic():
            if _on_the_way(badge.id) or not Badge.select().where(self._unchanged(badge)).exists():
                return False
            DeliveryJob.create(badge=badge.id, account=badge.account_id, kind="revoke",
                               state="queued", next_attempt_at=now, created_at=now,
                               updated_at=now)
            self._audit(badge, {"queued": "revoke", "why": "live at the provider"})
        return True

    def _audit(self, badge: _Local, detail: dict[str, Any]) -> None:
        audit(self.clock, "reconcile.fix", f"badge {badge.id}", detail, actor="reconcile")


def _label(account: ProviderAccount) -> str:
    if account.provider == "credly":
        return f"Credly organization {account.identifier}"
    return f"Accredible configuration {account.name!r}"


def _templates(account: ProviderAccount, every: bool) -> list[Any]:
    """Synced templates worth paging: active ones and any with badges here (or all)."""
    wanted = Template.account == account.id
    if not every:
        with_badges = Badge.select(Badge.template).distinct()
        wanted &= Template.is_active | Template.id.in_(with_badges)
    return list(Template.select().where(wanted).order_by(Template.id))


def _local_badges(account: ProviderAccount, template_ids: list[int]) -> list[_Local]:
    wanted = set(template_ids)
    rows = (Badge.select(Badge.id, Badge.status, Badge.provider_state, Badge.external_id,
                         Badge.provider_expires_on, Learner.username, Learner.email,
                         Template.id.alias("template_id"), Template.external_id.alias("template"))
            .join(Learner).switch(Badge).join(Template)
            .where(Template.account == account.id).order_by(Badge.id).tuples())
    return [_Local(r[0], account.id, *r[1:]) for r in rows if r[7] in wanted]


def _jobs_on_their_way(account_id: int) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for badge_id, kind in (DeliveryJob.select(DeliveryJob.badge, DeliveryJob.kind)
                           .where((DeliveryJob.account == account_id)
                                  & DeliveryJob.state.in_(["queued", "running"])).tuples()):
        found.setdefault(badge_id, set()).add(kind)
    return found


def _on_the_way(badge_id: int) -> bool:
    return DeliveryJob.select().where(
        (DeliveryJob.badge == badge_id)
        & DeliveryJob.state.in_(["queued", "running"])).exists()

