"""Read side: progress, badges, the intake log and "why was this awarded", paged in SQL."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from peewee import JOIN, SQL, fn

from badgetui.services.common import NotFound, iso, to_db
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

#: Counts stop here: "100,000+" is as useful to a reader as the exact figure, and far cheaper.
COUNT_CAP = 10_000

#: A learner prefix matching more learners than this is filtered while scanning in id order
#: (matches are dense); fewer are looked up by id through the learner index.
_SPARSE_LEARNERS = 1000


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
    expires_at: str | None = None

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


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Usernames starting with `prefix` are those in [prefix, prefix + U+10FFFF)."""
    return prefix, prefix + "\U0010ffff"


def _learners_by_prefix(prefix: str) -> list[tuple[int, str]] | None:
    """The learners a prefix names, or None when they are too many to look up one by one."""
    low, high = _prefix_range(prefix)
    rows = list(
        Learner.select(Learner.id, Learner.username)
        .where((Learner.username >= low) & (Learner.username < high))
        .order_by(Learner.username)
        .limit(_SPARSE_LEARNERS + 1)
        .tuples()
    )
    return None if len(rows) > _SPARSE_LEARNERS else rows


#: A prefix naming too many learners to list: checked row by row (a string, unlike the lists
#: and subqueries `_learner_keys` returns otherwise; compare with isinstance, as Peewee
#: overloads `==` on queries).
DENSE = "dense"


def _prefix_learner_ids(prefix: str) -> Any:
    """Ids of the learners a prefix names, as a subquery (the username index serves it)."""
    low, high = _prefix_range(prefix)
    return Learner.select(Learner.id).where((Learner.username >= low) & (Learner.username < high))


def _learner_keys(learner: str | None, prefix: str | None, *, listing: bool) -> Any:
    """How to narrow to learners: None (no filter), a list or subquery of ids, or DENSE.

    A list reads in id order and stops after a page, so a prefix naming many learners is
    better checked row by row while scanning ("dense"); a count reads every match, so it
    always goes through the learner ids."""
    if learner:
        return Learner.select(Learner.id).where(Learner.username == learner)
    if not prefix:
        return None
    if not listing:
        return _prefix_learner_ids(prefix)
    found = _learners_by_prefix(prefix)
    return DENSE if found is None else [lid for lid, _ in found]


def _dense_prefix(prefix: str) -> Any:
    """`username || ''` keeps the database off the username index: matches are dense, so
    reading in the list's own order and checking each row stops soonest."""
    name = Learner.username.concat("")
    low, high = _prefix_range(prefix)
    return (name >= low) & (name < high)


def capped_count(query: Any, cap: int = COUNT_CAP) -> int:
    """Rows of `query`, counted up to `cap` (+1, so callers can show "cap+")."""
    inner = query.select(SQL("1")).order_by().limit(cap + 1).offset(None)
    return int(inner.model.select(fn.COUNT(SQL("*"))).from_(inner.alias("c")).scalar() or 0)


def _progress_query(
    template: int | None, learner: str | None, learner_prefix: str | None,
    complete: bool | None, *, listing: bool,
) -> Any:
    query = Progress.select()
    if listing:
        query = query.join(Learner).switch(Progress)
    if complete is not None:
        query = query.where(Progress.complete == complete)
    keys = _learner_keys(learner, learner_prefix, listing=listing)
    named = keys is not None and not isinstance(keys, str)
    if isinstance(keys, str):
        query = query.where(_dense_prefix(learner_prefix or ""))
    elif named:
        query = query.where(Progress.learner.in_(keys))
    if template is not None:
        # With learners named, `+ 0` keeps SQLite on their index instead of reading every
        # row of the template.
        column = Progress.template + 0 if named else Progress.template
        query = query.where(column == template)
    return query


def list_progress(
    *,
    template: int | None = None,
    learner: str | None = None,
    learner_prefix: str | None = None,
    complete: bool | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[ProgressView]:
    """Progress rows in a stable order (by id), so live updates change rows in place."""
    query = _progress_query(template, learner, learner_prefix, complete, listing=True)
    query = (
        query.select(Progress, Learner.username, Template.name)
        .join(Template, on=(Progress.template == Template.id))
        .order_by(Progress.id)
        .limit(limit)
        .offset(offset)
    )
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


def count_progress(
    *,
    template: int | None = None,
    learner: str | None = None,
    learner_prefix: str | None = None,
    complete: bool | None = None,
) -> int:
    return capped_count(
        _progress_query(template, learner, learner_prefix, complete, listing=False))


def progress_detail(progress_id: int) -> dict[str, Any]:
    """One learner's progress on one template: every requirement, with the event that
    fulfilled it (and what that event did), and the badge held."""
    row = (
        Progress.select(Progress, Learner.username, Template.name)
        .join(Learner).switch(Progress).join(Template)
        .where(Progress.id == progress_id).objects().first()
    )
    if row is None:
        raise NotFound(f"no progress {progress_id}")
    done = {
        f.requirement_id: f
        for f in Fulfillment.select().where(Fulfillment.progress == progress_id)
    }
    events = {
        r.ref_id: r
        for r in IntakeRecord.select(IntakeRecord.ref_id, IntakeRecord.source,
                                     IntakeRecord.line, IntakeRecord.effects)
        .where(IntakeRecord.event_id.in_([f.event_id for f in done.values()]))
    } if done else {}
    requirements = []
    for req in Requirement.select().where(Requirement.template == row.template_id).order_by(
        Requirement.group, Requirement.position, Requirement.id
    ):
        f = done.get(req.id)
        record = events.get(f.event_id) if f else None
        requirements.append({
            "id": req.id, "key": req.key, "group": req.group, "event_type": req.event_type,
            "description": req.description,
            "fulfilled": None if f is None else {
                "event_id": f.event_id, "event_time": iso(f.event_time),
                "fulfilled_at": iso(f.fulfilled_at),
                "source": record.source if record else "",
                "line": record.line if record else None,
                "effects": record.effects if record else "",
            },
        })
    groups = sorted({r["group"] for r in requirements})
    badge = get_badge(row.badge_id).as_dict() if row.badge_id else None
    return {
        "id": row.id, "username": row.username, "template_id": row.template_id,
        "template": row.name, "fulfilled_groups": row.fulfilled_groups,
        "total_groups": len(groups), "complete": bool(row.complete),
        "updated_at": iso(row.updated_at), "requirements": requirements, "badge": badge,
    }


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
        iso(b.revoked_at), b.revoke_reason, b.last_error, iso(b.expires_at),
    )


def _badge_filters(
    query: Any, status: str | None, template: int | None, learner: str | None,
    learner_prefix: str | None, provider_state: str | None, failed_only: bool, *, listing: bool,
    expiring_before: datetime | None = None,
) -> Any:
    if expiring_before is not None:  # held badges expiring by then (the expires_at index)
        query = query.where(Badge.expires_at.is_null(False)
                            & (Badge.expires_at <= to_db(expiring_before))
                            & (Badge.status == "awarded"))
    keys = _learner_keys(learner, learner_prefix, listing=listing)
    named = keys is not None and not isinstance(keys, str)
    if status:
        # With learners named, `|| ''` keeps SQLite on their index, not on badge_status.
        query = query.where((Badge.status.concat("") if named else Badge.status) == status)
    if template is not None:
        query = query.where(Badge.template == template)
    if provider_state:
        query = query.where(Badge.provider_state == provider_state)
    if failed_only:
        failed_jobs = DeliveryJob.select(DeliveryJob.badge).where(DeliveryJob.state == "failed")
        query = query.where((Badge.provider_state == "error") | Badge.id.in_(failed_jobs))
    if isinstance(keys, str):
        query = query.where(_dense_prefix(learner_prefix or ""))
    elif named:
        query = query.where(Badge.learner.in_(keys))
    return query


def list_badges(
    *,
    status: str | None = None,
    template: int | None = None,
    learner: str | None = None,
    learner_prefix: str | None = None,
    provider_state: str | None = None,
    failed_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    newest_first: bool = False,
    expiring_before: datetime | None = None,
) -> list[BadgeView]:
    order = Badge.id.desc() if newest_first else Badge.id
    query = _badge_query().order_by(*((Badge.expires_at, Badge.id) if expiring_before
                                      else (order,)))
    query = _badge_filters(query, status, template, learner, learner_prefix, provider_state,
                           failed_only, listing=True, expiring_before=expiring_before)
    return [_badge_view(b) for b in query.limit(limit).offset(offset).objects()]


def count_badges(
    *,
    status: str | None = None,
    template: int | None = None,
    learner: str | None = None,
    learner_prefix: str | None = None,
    provider_state: str | None = None,
    failed_only: bool = False,
    expiring_before: datetime | None = None,
) -> int:
    return capped_count(_badge_filters(Badge.select(), status, template, learner, learner_prefix,
                                       provider_state, failed_only, listing=False,
                                       expiring_before=expiring_before))


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
    ]
    if awarded.get("by"):
        lines.append(f"awarded {badge['awarded_at']} by {awarded['by']} (operator award): "
                     f"{awarded.get('reason', '')}")
        if awarded.get("evidence"):
            lines.append(f"  evidence: {awarded['evidence']}")
    else:
        lines.append(f"awarded {badge['awarded_at']} by event {awarded.get('event_id')}:")
    if awarded.get("expires_at"):
        lines.append(f"  expires {awarded['expires_at']}")
    for req in awarded.get("requirements", []):
        rules = " and ".join(req["rules"]) or "no rules (any event of its type)"
        lines.append(f"  group {req['group']} requirement {req['id']!r}: {rules}")
        lines.append(f"    fulfilled by event {req['event_id']} at {req['event_time']}")
    revoked = data.get("revoked")
    if revoked and "penalty" not in revoked:
        lines.append(f"revoked {badge['revoked_at']} by {revoked.get('by', 'operator')}: "
                     f"{revoked.get('reason', '')}")
    elif revoked:
        rules = " and ".join(revoked["rules"]) or "no rules"
        lines.append(f"revoked {badge['revoked_at']} by event {revoked['event_id']}: penalty "
                     f"{revoked['penalty']!r} ({rules}) reset {', '.join(revoked['reset'])}")
    if badge.get("last_error"):
        lines.append(f"last error: {badge['last_error']}")
    return lines


def delivery_counts() -> dict[str, int]:
    """Delivery jobs waiting, running and failed."""
    # Only the states the status line shows: done and cancelled jobs pile up with history.
    return dict(
        DeliveryJob.select(DeliveryJob.state, fn.COUNT(DeliveryJob.id))
        .where(DeliveryJob.state.in_(["queued", "running", "failed"]))
        .group_by(DeliveryJob.state).tuples()
    )


def queue_depth() -> int:
    """Provider jobs waiting to be delivered."""
    return DeliveryJob.select().where(DeliveryJob.state == "queued").count()


def _intake_query(outcome: str | None, learner: str | None,
                  learner_prefix: str | None) -> Any:
    query = IntakeRecord.select()
    by_learner = bool(learner or learner_prefix)
    if outcome:
        # With a learner, `|| ''` leaves the (username, outcome) index to the learner part.
        column = IntakeRecord.outcome.concat("") if by_learner else IntakeRecord.outcome
        query = query.where(column == outcome)
    if learner:
        query = query.where(IntakeRecord.username == learner)
    elif learner_prefix:
        # The log keeps the username itself (rejected lines have no learner row): a range.
        low, high = _prefix_range(learner_prefix)
        query = query.where((IntakeRecord.username >= low) & (IntakeRecord.username < high))
    return query


def list_intake(
    *,
    outcome: str | None = None,
    learner: str | None = None,
    learner_prefix: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    newest_first: bool = False,
) -> list[IntakeView]:
    query = _intake_query(outcome, learner, learner_prefix).order_by(
        IntakeRecord.id.desc() if newest_first else IntakeRecord.id)
    return [
        IntakeView(
            r.id, r.ref_id, r.event_type, r.outcome, r.reason, r.source, r.line, r.username,
            iso(r.event_time), iso(r.received_at), r.effects,
        )
        for r in query.limit(limit).offset(offset)
    ]


def count_intake(*, outcome: str | None = None, learner: str | None = None,
                 learner_prefix: str | None = None) -> int:
    return capped_count(_intake_query(outcome, learner, learner_prefix))


def template_choices() -> list[tuple[str, int]]:
    """Templates worth filtering progress and badges by: those with requirements or badges."""
    has_reqs = Requirement.select(Requirement.id).where(Requirement.template == Template.id)
    has_badges = Badge.select(Badge.id).where(Badge.template == Template.id)
    query = (
        Template.select(Template.id, Template.name, Template.provider)
        .where(fn.EXISTS(has_reqs) | fn.EXISTS(has_badges))
        .order_by(Template.name, Template.id)
    )
    return [(f"{t.name} ({t.provider})", t.id) for t in query]


def intake_detail(record_id: int) -> dict[str, Any]:
    """One intake record in full: what came in (the payload as received) and what it did."""
    r = IntakeRecord.get_or_none(IntakeRecord.id == record_id)
    if r is None:
        raise NotFound(f"no intake record {record_id}")
    view = IntakeView(
        r.id, r.ref_id, r.event_type, r.outcome, r.reason, r.source, r.line, r.username,
        iso(r.event_time), iso(r.received_at), r.effects,
    )
    return {**view.as_dict(), "payload": r.payload or ""}
