"""Operator actions on one badge: revoke with a reason, re-send to the provider.

Both go through the durable delivery queue like every other provider call, and both leave an
audit entry. A revoke by hand follows the same rules as a penalty's (semantics.md): an issue that
never reached the provider is cancelled instead of issued-then-revoked, a `badge.revoked`
outgoing event is written, and the learner's progress on the template starts again, so the
badge is earned anew only by new events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from badgetui.domain.events import BADGE_REVOKED
from badgetui.services.common import (
    Clock,
    NotFound,
    ServiceError,
    current_database,
    is_postgres,
    iso,
    stop_issue,
    to_db,
)
from badgetui.services.processing import badge_payload
from badgetui.services.templates import audit
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Fulfillment,
    Learner,
    OutgoingEvent,
    Progress,
    Template,
)


class ActionRefused(ServiceError):
    """The action does not apply to this badge; the message says why."""


class BadgeActions:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def revoke(self, badge_id: int, reason: str, actor: str = "operator") -> str:
        """Revoke an awarded badge. Returns what happens at the provider, in words."""
        reason = " ".join(reason.split())
        if not reason:
            raise ActionRefused("a revoke needs a reason (the provider shows it to the learner)")
        now = to_db(self.clock())
        with current_database().atomic():
            badge = _awarded(badge_id, lock=True)
            cancelled = stop_issue(badge.id, now)
            if not cancelled:
                DeliveryJob.create(badge=badge.id, account=badge.template.account_id,
                                   kind="revoke", state="queued", next_attempt_at=now,
                                   created_at=now, updated_at=now)
            evidence = json.loads(badge.evidence or "{}")
            evidence["revoked"] = {"by": actor, "reason": reason, "at": iso(now)}
            Badge.update(
                status="revoked", revoked_at=now, revoke_reason=f"revoked by {actor}: {reason}",
                evidence=json.dumps(evidence),
                provider_state="cancelled" if cancelled else badge.provider_state,
                updated_at=now,
            ).where(Badge.id == badge.id).execute()
            progress = Progress.get_or_none(
                (Progress.learner == badge.learner_id) & (Progress.template == badge.template_id))
            if progress is not None:
                Fulfillment.delete().where(Fulfillment.progress == progress.id).execute()
                Progress.update(fulfilled_groups=0, complete=False, badge=None,
                                updated_at=now).where(Progress.id == progress.id).execute()
            learner = badge.learner
            user = {"id": learner.lms_id, "is_active": learner.is_active,
                    "pii": {"username": learner.username, "email": learner.email,
                            "name": learner.name}}
            payload = badge_payload(badge.uuid, user, badge.template)
            OutgoingEvent.create(uuid=str(uuid.uuid4()), event_type=BADGE_REVOKED,
                                 badge=badge.id, payload=json.dumps(payload), time=now)
            audit(self.clock, "badge.revoke", badge.uuid, {"reason": reason}, actor=actor)
        return ("the issue had not reached the provider: cancelled" if cancelled
                else "queued a revoke at the provider")

    def resend(self, badge_id: int, actor: str = "operator") -> str:
        """Make sure the provider holds an awarded badge: requeue a failed issue, or queue a
        new one that looks the badge up first and adopts it if it is there (never a second
        badge at the provider)."""
        now = to_db(self.clock())
        with current_database().atomic():
            badge = _awarded(badge_id)
            jobs = DeliveryJob.select().where(
                (DeliveryJob.badge == badge.id) & (DeliveryJob.kind == "issue")
                & DeliveryJob.state.in_(["queued", "running", "failed"]))
            job = jobs.first()
            if job is not None and job.state != "failed":
                raise ActionRefused(f"badge {badge.id} is already on its way to the provider "
                                    f"({job.state})")
            if job is not None:
                DeliveryJob.update(state="queued", next_attempt_at=now, updated_at=now).where(
                    DeliveryJob.id == job.id).execute()
                done = "requeued its failed delivery"
            else:
                # attempts=1: the claim makes it 2, and any attempt after the first looks the
                # badge up at the provider before issuing.
                DeliveryJob.create(badge=badge.id, account=badge.template.account_id,
                                   kind="issue", state="queued", attempts=1, next_attempt_at=now,
                                   created_at=now, updated_at=now)
                done = "queued a re-send (the provider is checked first)"
            audit(self.clock, "badge.resend", badge.uuid, actor=actor)
        return done


def _awarded(badge_id: int, *, lock: bool = False) -> Any:
    query = (
        Badge.select(Badge, Template, Learner).join(Template).switch(Badge).join(Learner)
        .where(Badge.id == badge_id)
    )
    if lock and is_postgres():
        # As processing does: a delivery worker recording this badge's issue waits, or is
        # waited for, so the provider state the revoke is decided on is current.
        query = query.for_update("FOR NO KEY UPDATE OF t1")
    badge = query.first()
    if badge is None:
        raise NotFound(f"no badge {badge_id}")
    if badge.status != "awarded":
        raise ActionRefused(f"badge {badge_id} is {badge.status}, not awarded")
    return badge
