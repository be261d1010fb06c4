"""What one delivery job does at the provider: issue, look the badge up and adopt it, revoke.

Why it is careful (providers.md §1.11, §2.6-2.7; issue 10):
- No idempotency key exists, so an issue is never repeated blindly: any attempt after the
  first, and any 422 on an issue whatever its text, looks the badge up first and adopts what
  exists; only when nothing is found does the provider's own message end the job.
- A lookup adopts only a row that is really this learner's badge: the clients re-check every
  row the provider returned (a real server may filter loosely), and here each candidate must
  also be live and not held by another of our badges. Badges issued without an earner id
  (Open edX Credentials never sends `issuer_earner_id`; Accredible `recipient.id` likewise) are
  found by email and template, and adopted only when they carry no id or ours.
- Accredible: a credential whose `expired_on` lies in the future is live (group auto-expiry);
  adopting never clears such a date. One created but left unpublished (`approve: false`, e.g.
  out of credits) is not delivered: it is recorded as `unpublished` and re-published on retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from badgetui.domain.evidence import accredible_evidence, credly_evidence
from badgetui.providers.accredible import AccredibleClient, AccredibleCredential
from badgetui.providers.credly import CredlyBadge, CredlyClient
from badgetui.providers.errors import PermanentError

Client = CredlyClient | AccredibleClient
#: Credly states a badge can no longer be adopted in (a re-issue makes a new one).
CREDLY_DEAD_STATES = ("revoked", "replaced")


@dataclass(slots=True)
class JobView:
    """A claimed delivery job with what the provider call needs (one SQL row)."""

    id: int
    kind: str
    attempts: int
    account_id: int
    provider: str
    badge_id: int
    badge_uuid: str
    badge_status: str
    external_id: str | None
    awarded_at: datetime
    revoke_reason: str
    template_external_id: str
    username: str
    email: str
    name: str
    lms_id: int | None
    #: The award's expiry (None: the template's default at the provider) and its why record.
    expires_at: datetime | None = None
    evidence: str = ""

    @property
    def earner_id(self) -> str:
        # The username is the learner's identity here (semantics.md); LMS ids are not trusted
        # to be unique across the event sources badgetui reads.
        return self.username

    @property
    def names(self) -> tuple[str, str]:
        parts = self.name.split()
        if not parts:
            return self.username, self.username
        if len(parts) == 1:
            return parts[0], parts[0]
        return " ".join(parts[:-1]), parts[-1]


@dataclass(slots=True)
class Outcome:
    """What the provider now holds for the badge, and how it got there."""

    external_id: str | None
    state: str
    how: str  # issued, adopted, revoked, cancelled
    expires_on: str | None = None


class UnpublishedError(PermanentError):
    """Accredible holds the credential but left it unpublished: not delivered yet."""

    def __init__(self, message: str, *, external_id: str, expires_on: str | None) -> None:
        super().__init__(message, status=None, provider="Accredible")
        self.external_id = external_id
        self.expires_on = expires_on


def _day(value: str | None) -> str | None:
    return value[:10] if value else None


class ProviderJobs:
    """Runs one job's provider calls; `owned_elsewhere(badge_id, external_id)` says whether a
    provider badge already belongs to another held badge of ours (never adopted twice)."""

    def __init__(self, today: Callable[[], date],
                 owned_elsewhere: Callable[[int, str], bool]) -> None:
        self.today = today
        self.owned_elsewhere = owned_elsewhere

    async def issue(self, client: Client, job: JobView) -> Outcome:
        if isinstance(client, CredlyClient):
            return await self._issue_credly(client, job)
        return await self._issue_accredible(client, job)

    async def revoke(self, client: Client, job: JobView) -> Outcome:
        if isinstance(client, CredlyClient):
            return await self._revoke_credly(client, job)
        return await self._revoke_accredible(client, job)

    # -- Credly --------------------------------------------------------------------------
    async def find_credly(self, client: CredlyClient, job: JobView) -> CredlyBadge | None:
        """This learner's live badge of the template: by our earner id, else by email among
        badges issued without an earner id (or with ours)."""
        template = job.template_external_id
        for badge in await client.find_badges(earner_id=job.earner_id, template_id=template):
            if self._adoptable_credly(job, badge):
                return badge
        for badge in await client.find_badges_by_email(email=job.email, template_id=template):
            if badge.issuer_earner_id in (None, job.earner_id) and self._adoptable_credly(
                    job, badge):
                return badge
        return None

    def _adoptable_credly(self, job: JobView, badge: CredlyBadge) -> bool:
        return (badge.state not in CREDLY_DEAD_STATES
                and not self.owned_elsewhere(job.badge_id, badge.id))

    async def _issue_credly(self, client: CredlyClient, job: JobView) -> Outcome:
        if job.attempts > 1:
            found = await self.find_credly(client, job)
            if found:
                return Outcome(found.id, found.state, "adopted")
        first, last = job.names
        try:
            badge = await client.issue(
                template_id=job.template_external_id, email=job.email, first_name=first,
                last_name=last, issued_at=job.awarded_at, earner_id=job.earner_id,
                expires_at=job.expires_at, evidence=credly_evidence(job.evidence,
                                                                    job.badge_uuid),
            )
        except PermanentError as exc:
            if exc.status != 422:
                raise
            # Any validation refusal may mean "already there" (the text is unconfirmed).
            found = await self.find_credly(client, job)
            if found is None:
                raise PermanentError(
                    f"Credly refused the issue: {exc.message} (no live badge of this learner "
                    "and template found there to adopt)", status=422,
                    provider=exc.provider) from None
            return Outcome(found.id, found.state, "adopted")
        return Outcome(badge.id, badge.state, "issued")

    async def _revoke_credly(self, client: CredlyClient, job: JobView) -> Outcome:
        reason = job.revoke_reason or "revoked by badgetui"
        external = job.external_id
        if not external:
            found = await self.find_credly(client, job)
            if found is None:
                return Outcome(None, "cancelled", "cancelled")
            external = found.id
        try:
            badge = await client.revoke(external, reason)
        except PermanentError as exc:
            if exc.status == 422:
                current = await client.badge(external)
                if current.state == "revoked":
                    return Outcome(external, "revoked", "revoked")
            raise
        return Outcome(badge.id, badge.state, "revoked")

    # -- Accredible ----------------------------------------------------------------------
    async def find_accredible(
        self, client: AccredibleClient, job: JobView, group: int
    ) -> AccredibleCredential | None:
        """This learner's credential in the group: a live one first, else an expired one
        (a re-award restores it). Credentials carrying another recipient id are not ours."""
        rows = await client.search(email=job.email, group_id=group)
        mine = [c for c in rows if c.recipient_id in (None, job.earner_id)
                and not self.owned_elsewhere(job.badge_id, str(c.id))]
        today = self.today()
        live = [c for c in mine if c.live_on(today)]
        return (live or mine or [None])[0]

    async def _issue_accredible(self, client: AccredibleClient, job: JobView) -> Outcome:
        group = int(job.template_external_id)
        if job.attempts > 1:
            found = await self.find_accredible(client, job, group)
            if found:
                return await self._adopt(client, found)
        try:
            cred = await client.create_credential(
                group_id=group, name=job.name or job.username, email=job.email,
                recipient_id=job.earner_id, issued_on=job.awarded_at.date(),
                expired_on=job.expires_at.date() if job.expires_at else None,
                evidence_items=accredible_evidence(job.evidence),
            )
        except PermanentError as exc:
            if exc.status != 422:
                raise
            found = await self.find_accredible(client, job, group)
            if found is None:
                raise PermanentError(
                    f"Accredible refused the credential: {exc.message} (none of this learner "
                    "found in the group to adopt)", status=422, provider=exc.provider) from None
            return await self._adopt(client, found)
        return self._published(cred, "issued")

    async def _adopt(self, client: AccredibleClient, cred: AccredibleCredential) -> Outcome:
        if not cred.live_on(self.today()):
            # Expired by a revoke (or an auto-expiry long past): a re-award restores it.
            cred = await client.expire(cred.id, None)
        if _approve(cred) is None:
            cred = await client.credential(cred.id)  # search rows do not say if published
        if _approve(cred) is False:
            cred = await client.publish(cred.id)
        return self._published(cred, "adopted")

    def _published(self, cred: AccredibleCredential, how: str) -> Outcome:
        expires = _day(cred.expired_on)
        if _approve(cred) is False:
            raise UnpublishedError(
                "Accredible holds the credential but left it unpublished (out of credits?); "
                "add credits, then retry or re-send to publish it",
                external_id=str(cred.id), expires_on=expires)
        return Outcome(str(cred.id), "accepted", how, expires)

    async def _revoke_accredible(self, client: AccredibleClient, job: JobView) -> Outcome:
        external = job.external_id
        if not external:
            found = await self.find_accredible(client, job, int(job.template_external_id))
            if found is None:
                return Outcome(None, "cancelled", "cancelled")
            external = str(found.id)
        today = self.today()
        cred = await client.expire(int(external), today)
        return Outcome(str(cred.id), "expired", "revoked", today.isoformat())


def _approve(cred: Any) -> bool | None:
    """`approve` as Accredible reported it (None: not in the answer, e.g. a v2 search row)."""
    return getattr(cred, "approve", None)
