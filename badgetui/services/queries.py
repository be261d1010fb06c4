"""Read side: progress, badges, the intake log and "why was this awarded", paged in SQL."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from peewee import JOIN

from badgetui.services.common import NotFound, iso
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Fulfillment,
    IntakeRecord,
    Learner,
    Progress,
    ProviderAccount,
    Requirement,
    Template,
)

DEFAULT_LIMIT = 1000


@dataclass(slots=True)
class ProgressView:
    id: int
    username: str
    template_id: int
    template: str
    fulfilled_groups: int
    total_groups: int
    complete: bool
    holds_badge: bool
    fulfilled: list[str]
    updated_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BadgeView:
    id: int
    uuid: str
    username: str
    email: str
    template_id: int
    template: str
    provider: str
    account: str
    external_template_id: str
    status: str
    provider_state: str
    external_id: str | None
    awarded_at: str | None
    revoked_at: str | None
    revoke_reason: str
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class IntakeView:
    id: int
    event_id: str | None
    event_type: str | None
    outcome: str
    reason: str
    source: str
    line: int | None
    username: str | None
    event_time: str | None
    received_at: str | None
    effects: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _learner_filter(query: Any, learner: str | None) -> Any:
    if learner:
        query = query.where(Learner.username == learner)
    return query


def list_progress(
    *,
    template: int | None = None,
    learner: str | None = None,
    complete: bool | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[ProgressView]:
    query = (
        Progress.select(Progress, Learner.username, Template.name)
        .join(Learner)
        .switch(Progress)
        .join(Template)
        .order_by(Progress.id)
    )
    if template is not None:
        query = query.where(Progress.template == template)
    if complete is not None:
        query = query.where(Progress.complete == complete)
    query = _learner_filter(query, learner).limit(limit).offset(offset)
    rows = list(query.objects())
    groups = _group_totals({r.template_id for r in rows})
    fulfilled: dict[int, list[str]] = {}
    if rows:
        for pid, key in (
            Fulfillment.select(Fulfillment.progress, Requirement.key)
            .join(Requirement)
            .where(Fulfillment.progress.in_([r.id for r in rows]))
            .order_by(Requirement.position)
            .tuples()
        ):
            fulfilled.setdefault(pid, []).append(key)
    return [
        ProgressView(
            r.id, r.username, r.template_id, r.name, r.fulfilled_groups,
            groups.get(r.template_id, 0), bool(r.complete), r.badge_id is not None,
            fulfilled.get(r.id, []), iso(r.updated_at),
        )
        for r in rows
    ]


def _group_totals(template_ids: set[int]) -> dict[int, int]:
    totals: dict[int, set[str]] = {}
    if template_ids:
        for tid, group in Requirement.select(Requirement.template, Requirement.group).where(
            Requirement.template.in_(sorted(template_ids))
        ).tuples():
            totals.setdefault(tid, set()).add(group)
    return {tid: len(groups) for tid, groups in totals.items()}


def _badge_query() -> Any:
    return (
        Badge.select(
            Badge, Learner.username, Learner.email, Template.name, Template.provider,
            Template.external_id.alias("template_external_id"), ProviderAccount.name.alias("acct"),
        )
        .join(Learner)
        .switch(Badge)
        .join(Template)
        .join(ProviderAccount, JOIN.INNER, on=(Template.account == ProviderAccount.id))
    )


def _badge_view(b: Any) -> BadgeView:
    return BadgeView(
        b.id, b.uuid, b.username, b.email, b.template_id, b.name, b.provider, b.acct,
        b.template_external_id, b.status, b.provider_state, b.external_id, iso(b.awarded_at),
        iso(b.revoked_at), b.revoke_reason, b.last_error,
    )


def list_badges(
    *,
    status: str | None = None,
    template: int | None = None,
    learner: str | None = None,
    provider_state: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[BadgeView]:
    query = _badge_query().order_by(Badge.id)
    if status:
        query = query.where(Badge.status == status)
    if template is not None:
        query = query.where(Badge.template == template)
    if provider_state:
        query = query.where(Badge.provider_state == provider_state)
    query = _learner_filter(query, learner).limit(limit).offset(offset)
    return [_badge_view(b) for b in query.objects()]


def get_badge(ref: str | int) -> BadgeView:
    text = str(ref)
    query = _badge_query()
    query = query.where((Badge.id == int(text)) if text.isdigit() else (Badge.uuid == text))
    row = query.objects().first()
    if row is None:
        raise NotFound(f"no badge {text!r}")
    return _badge_view(row)


def why(ref: str | int) -> dict[str, Any]:
    """The requirements, rules and events that awarded a badge (and what revoked it)."""
    view = get_badge(ref)
    evidence = json.loads(Badge.get_by_id(view.id).evidence or "{}")
    return {"badge": view.as_dict(), **evidence}


def why_lines(data: dict[str, Any]) -> list[str]:
    """`why` as plain lines, for the CLI and the console alike."""
    badge = data["badge"]
    awarded = data.get("awarded") or {}
    lines = [
        f"badge {badge['id']} ({badge['uuid']}): {badge['template']} for {badge['username']}, "
        f"{badge['status']}, provider state {badge['provider_state']}",
        f"awarded {badge['awarded_at']} by event {awarded.get('event_id')}:",
    ]
    for req in awarded.get("requirements", []):
        rules = " and ".join(req["rules"]) or "no rules (any event of its type)"
        lines.append(f"  group {req['group']} requirement {req['id']!r}: {rules}")
        lines.append(f"    fulfilled by event {req['event_id']} at {req['event_time']}")
    revoked = data.get("revoked")
    if revoked:
        rules = " and ".join(revoked["rules"]) or "no rules"
        lines.append(f"revoked {badge['revoked_at']} by event {revoked['event_id']}: penalty "
                     f"{revoked['penalty']!r} ({rules}) reset {', '.join(revoked['reset'])}")
    if badge.get("last_error"):
        lines.append(f"last error: {badge['last_error']}")
    return lines


def delivery_counts() -> dict[str, int]:
    """Delivery jobs by state."""
    from peewee import fn

    return dict(
        DeliveryJob.select(DeliveryJob.state, fn.COUNT(DeliveryJob.id))
        .group_by(DeliveryJob.state).tuples()
    )


def queue_depth() -> int:
    """Provider jobs waiting to be delivered."""
    return DeliveryJob.select().where(DeliveryJob.state == "queued").count()


def list_intake(
    *,
    outcome: str | None = None,
    learner: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    newest_first: bool = False,
) -> list[IntakeView]:
    query = IntakeRecord.select().order_by(
        IntakeRecord.id.desc() if newest_first else IntakeRecord.id)
    if outcome:
        query = query.where(IntakeRecord.outcome == outcome)
    if learner:
        query = query.where(IntakeRecord.username == learner)
    return [
        IntakeView(
            r.id, r.ref_id, r.event_type, r.outcome, r.reason, r.source, r.line, r.username,
            iso(r.event_time), iso(r.received_at), r.effects,
        )
        for r in query.limit(limit).offset(offset)
    ]
