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
    chunked,
    current_database,
    iso,
    to_db,
)
from badgetui.services.config_io import ConfigImportError, ConfigService
from badgetui.services.migrate.plan import (
    Finding,
    MigrationPlan,
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
#: Rows per multi-row INSERT and ids per IN list (SQLite allows 32,766 parameters).
CHUNK = 500


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
        entries = [t.config for t in plan.templates]
        try:  # all at once; only when something is refused, template by template
            result = self.config.import_config(BadgeConfig(templates=entries))
        except ConfigImportError:
            entries = []
            for target in plan.templates:
                try:
                    self.config.import_config(BadgeConfig(templates=[target.config]),
                                              dry_run=True)
                except ConfigImportError as exc:
                    applied.skipped_configs.append(
                        f"template {target.source_id} ({target.name}): "
                        + "; ".join(exc.problems))
                    continue
                entries.append(target.config)
            result = self.config.import_config(BadgeConfig(templates=entries))
        applied.config_changes = list(result.changes)
        if applied.skipped_configs:
            plan.findings.append(Finding(
                "config-refused", "templates whose Credentials configuration badgetui refuses "
                "(unknown event type, a rule that can never match, ...)",
                "imported inactive without requirements: fix the setting or the rule, then "
                "run the migration again", list(applied.skipped_configs)))

    def _learners(self, plan: MigrationPlan, applied: Applied, now: datetime) -> dict[str, int]:
        names = [t.username for t in plan.learners]
        existing = {r.username: r for chunk in chunked(names, CHUNK)
                    for r in Learner.select().where(Learner.username.in_(list(chunk)))}
        fresh = []
        for target in plan.learners:
            row = existing.get(target.username)
            if row is None:
                fresh.append((target.username, target.email, target.name, target.lms_id,
                              target.is_active, now))
            elif (not row.email and target.email) or (not row.name and target.name):
                Learner.update(email=row.email or target.email, name=row.name or target.name,
                               lms_id=row.lms_id if row.lms_id is not None else target.lms_id,
                               ).where(Learner.id == row.id).execute()
                applied.created["learner details"] += 1
            else:
                applied.unchanged["learners"] += 1
        for chunk in chunked(fresh, CHUNK):
            Learner.insert_many(chunk, fields=[
                Learner.username, Learner.email, Learner.name, Learner.lms_id,
                Learner.is_active, Learner.updated_at]).execute()
        applied.created["learners"] += len(fresh)
        return {name: lid for chunk in chunked(names, CHUNK) for name, lid in Learner.select(
            Learner.username, Learner.id).where(Learner.username.in_(list(chunk))).tuples()}

    def _badges(self, plan: MigrationPlan, templates: dict[int, int], learners: dict[str, int],
                applied: Applied, now: datetime) -> dict[str, tuple[int, bool]]:
        """Badge uuid -> (row id, created now)."""
        uuids = [t.source.uuid for t in plan.badges]
        existing = {u for chunk in chunked(uuids, CHUNK) for (u,) in Badge.select(Badge.uuid).where(
            Badge.uuid.in_(list(chunk))).tuples()}
        accounts = dict(Template.select(Template.id, Template.account).where(
            Template.id.in_(list(templates.values()) or [0])).tuples())
        fulfilled = {(p.username, p.template): p.fulfilled for p in plan.progress}
        by_source = {t.source_id: t for t in plan.templates}
        rows, made = [], []
        for target in plan.badges:
            source = target.source
            if source.uuid in existing:
                applied.unchanged["badges"] += 1
                continue
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
            rows.append((
                source.uuid, learners[source.username], templates[target.template],
                target.status, target.provider_state, target.external_id, target.last_error,
                to_db(source.created) or now, BADGE_REF.format(source.id),
                (to_db(source.modified) or now) if revoked else None,
                BADGE_REF.format(source.id) if revoked else None, target.revoke_reason,
                json.dumps(evidence), to_db(source.modified) or now))
            applied.created[f"badges {target.status}"] += 1
            made.append(target)
        for chunk in chunked(rows, CHUNK):
            Badge.insert_many(chunk, fields=[
                Badge.uuid, Badge.learner, Badge.template, Badge.status, Badge.provider_state,
                Badge.external_id, Badge.last_error, Badge.awarded_at, Badge.award_event_id,
                Badge.revoked_at, Badge.revoke_event_id, Badge.revoke_reason, Badge.evidence,
                Badge.updated_at]).execute()
        ids = {u: i for chunk in chunked(uuids, CHUNK) for u, i in Badge.select(
            Badge.uuid, Badge.id).where(Badge.uuid.in_(list(chunk))).tuples()}
        # attempts=1 for issues: the claim makes it 2, and any attempt after the first looks
        # the badge up at the provider (by email and template, for Credentials' badges) first.
        jobs = [(ids[t.source.uuid], accounts[templates[t.template]], t.job, "queued",
                 1 if t.job == "issue" else 0, now, now, now) for t in made if t.job]
        for chunk in chunked(jobs, CHUNK):
            DeliveryJob.insert_many(chunk, fields=[
                DeliveryJob.badge, DeliveryJob.account, DeliveryJob.kind, DeliveryJob.state,
                DeliveryJob.attempts, DeliveryJob.next_attempt_at, DeliveryJob.created_at,
                DeliveryJob.updated_at]).execute()
        for target in made:
            if target.job:
                applied.jobs[target.job] += 1
        created = {t.source.uuid for t in made}
        return {u: (ids[u], u in created) for u in uuids}

    def _progress(self, plan: MigrationPlan, templates: dict[int, int],
                  learners: dict[str, int], requirements: dict[tuple[int, str], int],
                  badges: dict[str, tuple[int, bool]], applied: Applied, now: datetime) -> None:
        held: dict[tuple[int, int], int] = {}
        for target in plan.badges:
            if target.status == "awarded" and target.source.uuid in badges:
                key = (learners[target.source.username], templates[target.template])
                held[key] = badges[target.source.uuid][0]
        tids = sorted(set(templates.values())) or [0]

        def stored() -> dict[tuple[int, int], int]:
            return {(lid, tid): pid for pid, lid, tid in Progress.select(
                Progress.id, Progress.learner, Progress.template).where(
                Progress.template.in_(tids)).tuples()}

        existing = stored()
        wanted = [(learners[t.username], templates[t.template]) for t in plan.progress]
        missing = list(dict.fromkeys(
            [k for k in wanted if k not in existing]
            + [k for k in held if k not in existing]))  # badges without progress too
        for chunk in chunked(missing, CHUNK):
            Progress.insert_many([(lid, tid, held.get((lid, tid)), now) for lid, tid in chunk],
                                 fields=[Progress.learner, Progress.template, Progress.badge,
                                         Progress.updated_at]).execute()
        applied.created["progress"] += len(missing)
        applied.unchanged["progress"] += len(wanted) - len(
            [k for k in wanted if k not in existing])
        touched = {tid for _, tid in missing}
        if missing:
            existing = stored()
        have = set(Fulfillment.select(Fulfillment.progress, Fulfillment.requirement).join(
            Progress).where(Progress.template.in_(tids)).tuples())
        rows = []
        for target, key in zip(plan.progress, wanted, strict=True):
            pid = existing[key]
            for req_key, fulfillment_id in target.fulfilled:
                requirement = requirements.get((key[1], req_key))
                if requirement is None:
                    continue
                if (pid, requirement) in have:
                    applied.unchanged["fulfillments"] += 1
                    continue
                # Credentials keeps no time of fulfilment: the migration's time stands for it.
                rows.append((pid, requirement, FULFILLMENT_REF.format(fulfillment_id), now, now))
                have.add((pid, requirement))
                touched.add(key[1])
        for chunk in chunked(rows, CHUNK):
            Fulfillment.insert_many(chunk, fields=[
                Fulfillment.progress, Fulfillment.requirement, Fulfillment.event_id,
                Fulfillment.event_time, Fulfillment.fulfilled_at]).execute()
        applied.created["fulfillments"] += len(rows)
        if touched:
            recompute_progress(sorted(touched))
            bump_config_generation()


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
