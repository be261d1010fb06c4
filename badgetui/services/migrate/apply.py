"""Writing a migration plan into badgetui's database: one transaction, idempotent.

Every row is matched on what identifies it on both sides (account: provider + identifier;
template: account + external id; learner: username; badge: Credentials' UserCredential UUID;
progress: learner + template; fulfillment: progress + requirement), so a second run finds
everything in place and writes nothing. A dry run does the same work and rolls it back, so
its counts are exactly what the apply will do.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from badgetui.domain.config import BadgeConfig
from badgetui.services.badge_actions import BadgeActions
from badgetui.services.common import (
    Clock,
    bump_config_generation,
    current_database,
    iso,
    to_db,
)
from badgetui.services.config_io import ConfigImportError, ConfigService
from badgetui.services.migrate.plan import (
    BadgeTarget,
    Finding,
    MigrationPlan,
    ProgressTarget,
    TemplateTarget,
)
from badgetui.services.processing import recompute_progress
from badgetui.services.templates import audit
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Fulfillment,
    Learner,
    Progress,
    ProviderAccount,
    Requirement,
    Template,
)

ACTOR = "migration"
#: Fulfillments carry this instead of an event id: Credentials keeps none.
FULFILLMENT_REF = "credentials:fulfillment:{}"
BADGE_REF = "credentials:usercredential:{}"


class _Rollback(Exception):
    """Leaves a dry run's transaction without keeping anything."""


@dataclass(slots=True)
class Applied:
    """What the apply did (or, for a dry run, would do), per kind of row."""

    created: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    config_changes: list[str] = field(default_factory=list)
    skipped_configs: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(sum(self.created.values()) or self.config_changes or sum(self.jobs.values()))


class Applier:
    def __init__(self, clock: Clock, config: ConfigService, badges: BadgeActions) -> None:
        self.clock = clock
        self.config = config
        self.badges = badges

    def apply(self, plan: MigrationPlan, *, dry_run: bool, label: str) -> Applied:
        applied = Applied()
        try:
            with current_database().atomic():
                self._write(plan, applied, label)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        return applied

    # -- the steps, in dependency order -----------------------------------------------------
    def _write(self, plan: MigrationPlan, applied: Applied, label: str) -> None:
        now = to_db(self.clock())
        accounts = self._accounts(plan, applied, now)
        templates = self._templates(plan, accounts, applied, now)
        self._config(plan, applied)
        requirements = {(r.template_id, r.key): r.id for r in Requirement.select(
            Requirement.id, Requirement.template, Requirement.key).where(
            Requirement.template.in_(list(templates.values()) or [0]))}
        learners = self._learners(plan, applied, now)
        badges = self._badges(plan, templates, learners, applied, now)
        self._progress(plan, templates, learners, requirements, badges, applied, now)
        for target in plan.badges:  # early awards the operator chose to revoke
            row = badges.get(target.source.uuid)
            if target.revoke_now and row is not None and row[1]:
                self.badges.revoke(row[0], "awarded by Open edX Credentials before every "
                                   "requirement group was fulfilled", actor=ACTOR)
                applied.jobs["revoke (early award)"] += 1
        if applied.changed:
            audit(self.clock, "migrate.credentials", label,
                  {"created": dict(applied.created), "jobs": dict(applied.jobs),
                   "findings": {f.code: len(f.items) for f in plan.findings}}, actor=ACTOR)

    def _accounts(self, plan: MigrationPlan, applied: Applied, now: datetime) -> dict[str, int]:
        ids: dict[str, int] = {}
        for target in plan.accounts:
            row = ProviderAccount.get_or_none(
                (ProviderAccount.provider == target.provider)
                & (ProviderAccount.identifier == target.identifier))
            if row is None:  # an existing account keeps its (perhaps rotated) key
                row = ProviderAccount.create(
                    provider=target.provider, identifier=target.identifier, name=target.name,
                    api_key=target.api_key, key_created_at=now if target.api_key else None,
                    created_at=now)
                applied.created["accounts"] += 1
            else:
                applied.unchanged["accounts"] += 1
            ids[target.label] = row.id
        return ids

    def _templates(self, plan: MigrationPlan, accounts: dict[str, int], applied: Applied,
                   now: datetime) -> dict[int, int]:
        ids: dict[int, int] = {}
        for target in plan.templates:
            account = accounts[f"{target.provider}:{target.account}"]
            row = Template.get_or_none((Template.provider == target.provider)
                                       & (Template.account == account)
                                       & (Template.external_id == target.external_id))
            if row is None:
                row = Template.create(
                    account=account, provider=target.provider, external_id=target.external_id,
                    name=target.name, description=target.description,
                    image_url=target.image_url, state=target.state, is_active=False,
                    created_at=to_db(target.created) or now,
                    updated_at=to_db(target.modified) or now)
                applied.created["templates"] += 1
            else:
                applied.unchanged["templates"] += 1
            ids[target.source_id] = row.id
        return ids

    def _config(self, plan: MigrationPlan, applied: Applied) -> None:
        """Requirements, rules, penalties and activation through config import: the same
        checks and the same result as `config import` of the file `config export` shows. A
        template whose configuration is refused keeps none and stays inactive (a finding)."""
        entries = []
        for target in plan.templates:
            try:
                self.config.import_config(BadgeConfig(templates=[target.config]), dry_run=True)
            except ConfigImportError as exc:
                applied.skipped_configs.append(f"template {target.source_id} ({target.name}): "
                                               + "; ".join(exc.problems))
                continue
            entries.append(target.config)
        if applied.skipped_configs:
            plan.findings.append(Finding(
                "config-refused", "templates whose Credentials configuration badgetui refuses "
                "(unknown event type, a rule that can never match, ...)",
                "imported inactive without requirements: fix the setting or the rule, then "
                "run the migration again", list(applied.skipped_configs)))
        if entries:
            result = self.config.import_config(BadgeConfig(templates=entries))
            applied.config_changes = list(result.changes)

    def _learners(self, plan: MigrationPlan, applied: Applied, now: datetime) -> dict[str, int]:
        existing = {r.username: r for r in Learner.select().where(
            Learner.username.in_([t.username for t in plan.learners] or [""]))}
        ids: dict[str, int] = {}
        for target in plan.learners:
            row = existing.get(target.username)
            if row is None:
                row = Learner.create(username=target.username, email=target.email,
                                     name=target.name, lms_id=target.lms_id,
                                     is_active=target.is_active, updated_at=now)
                applied.created["learners"] += 1
            elif (not row.email and target.email) or (not row.name and target.name):
                Learner.update(email=row.email or target.email, name=row.name or target.name,
                               lms_id=row.lms_id if row.lms_id is not None else target.lms_id,
                               ).where(Learner.id == row.id).execute()
                applied.created["learner details"] += 1
            else:
                applied.unchanged["learners"] += 1
            ids[target.username] = row.id
        return ids

    def _badges(self, plan: MigrationPlan, templates: dict[int, int], learners: dict[str, int],
                applied: Applied, now: datetime) -> dict[str, tuple[int, bool]]:
        """Badge uuid -> (row id, created now)."""
        uuids = [t.source.uuid for t in plan.badges]
        existing = {r.uuid: r.id for r in Badge.select(Badge.id, Badge.uuid).where(
            Badge.uuid.in_(uuids or [""]))}
        out: dict[str, tuple[int, bool]] = {}
        accounts = dict(Template.select(Template.id, Template.account).where(
            Template.id.in_(list(templates.values()) or [0])).tuples())
        fulfilled = {(p.username, p.template): p.fulfilled for p in plan.progress}
        by_source = {t.source_id: t for t in plan.templates}
        for target in plan.badges:
            source = target.source
            if source.uuid in existing:
                applied.unchanged["badges"] += 1
                out[source.uuid] = (existing[source.uuid], False)
                continue
            template = templates[target.template]
            awarded_at = to_db(source.created) or now
            revoked = target.status == "revoked"
            evidence: dict[str, Any] = {
                "awarded": {"event_id": BADGE_REF.format(source.id), "requirements": _why(
                    by_source[target.template],
                    fulfilled.get((source.username, target.template), []))},
                "migrated": {"from": "Open edX Credentials", "user_credential": source.id,
                             "state": source.state, "external_id": source.external_id,
                             "at": iso(now)}}
            if revoked:
                evidence["revoked"] = {"by": "Open edX Credentials",
                                       "reason": target.revoke_reason,
                                       "at": iso(to_db(source.modified) or now)}
            row = Badge.create(
                uuid=source.uuid, learner=learners[source.username], template=template,
                status=target.status, provider_state=target.provider_state,
                external_id=target.external_id, last_error=target.last_error,
                awarded_at=awarded_at, award_event_id=BADGE_REF.format(source.id),
                revoked_at=(to_db(source.modified) or now) if revoked else None,
                revoke_event_id=BADGE_REF.format(source.id) if revoked else None,
                revoke_reason=target.revoke_reason, evidence=json.dumps(evidence),
                updated_at=to_db(source.modified) or now)
            applied.created[f"badges {target.status}"] += 1
            if target.job:
                self._job(target, row.id, accounts[template], now)
                applied.jobs[target.job] += 1
            out[source.uuid] = (row.id, True)
        return out

    def _job(self, target: BadgeTarget, badge: int, account: int, now: datetime) -> None:
        # attempts=1: the claim makes it 2, and any attempt after the first looks the badge up
        # at the provider (by email and template, for Credentials' badges) before issuing.
        DeliveryJob.create(badge=badge, account=account, kind=target.job, state="queued",
                           attempts=1 if target.job == "issue" else 0, next_attempt_at=now,
                           created_at=now, updated_at=now)

    def _progress(self, plan: MigrationPlan, templates: dict[int, int],
                  learners: dict[str, int], requirements: dict[tuple[int, str], int],
                  badges: dict[str, tuple[int, bool]], applied: Applied, now: datetime) -> None:
        held: dict[tuple[str, int], int] = {}
        for target in plan.badges:
            if target.status == "awarded" and target.source.uuid in badges:
                held[(target.source.username, target.template)] = badges[target.source.uuid][0]
        touched: set[int] = set()
        for target in plan.progress:
            template = templates[target.template]
            learner = learners[target.username]
            row = Progress.get_or_none((Progress.learner == learner)
                                       & (Progress.template == template))
            if row is None:
                row = Progress.create(learner=learner, template=template,
                                      badge=held.get((target.username, target.template)),
                                      updated_at=now)
                applied.created["progress"] += 1
                touched.add(template)
            else:
                applied.unchanged["progress"] += 1
            self._fulfillments(target, row, template, requirements, applied, touched, now)
        for (username, source_template), badge in held.items():  # badges without progress
            template = templates[source_template]
            if not Progress.get_or_none((Progress.learner == learners[username])
                                        & (Progress.template == template)):
                Progress.create(learner=learners[username], template=template, badge=badge,
                                updated_at=now)
                applied.created["progress"] += 1
                touched.add(template)
        if touched:
            recompute_progress(sorted(touched))
            bump_config_generation()

    def _fulfillments(self, target: ProgressTarget, row: Progress, template: int,
                      requirements: dict[tuple[int, str], int], applied: Applied,
                      touched: set[int], now: datetime) -> None:
        have = {f for (f,) in Fulfillment.select(Fulfillment.requirement).where(
            Fulfillment.progress == row.id).tuples()}
        for key, fulfillment_id in target.fulfilled:
            requirement = requirements.get((template, key))
            if requirement is None or requirement in have:
                if requirement is not None:
                    applied.unchanged["fulfillments"] += 1
                continue
            # Credentials keeps no time of fulfilment: the migration's time stands for it.
            Fulfillment.create(progress=row.id, requirement=requirement,
                               event_id=FULFILLMENT_REF.format(fulfillment_id),
                               event_time=now, fulfilled_at=now)
            applied.created["fulfillments"] += 1
            touched.add(template)


def _why(template: TemplateTarget, fulfilled: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """The "why" of a migrated badge: the requirements Credentials recorded as fulfilled."""
    reqs = {r.id: r for r in template.config.requirements}
    out = []
    for key, fulfillment_id in fulfilled:
        req = reqs.get(key)
        if req is None:
            continue
        out.append({"id": req.id, "group": req.group, "description": req.description,
                    "event_type": req.event_type,
                    "rules": [f"{r.path} {r.op} {r.value!r}" for r in req.rules],
                    "event_id": FULFILLMENT_REF.format(fulfillment_id),
                    "event_time": None})
    return out
