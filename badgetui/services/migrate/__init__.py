"""Moving a site from Open edX Credentials to badgetui: `badgetui migrate credentials`.

source (read-only connection) -> snapshot (Credentials' rows) -> plan (badgetui's rows and the
findings) -> apply (one transaction; a dry run rolls it back). See the README, "Moving from
Open edX Credentials", for the cut-over of the event bus consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from badgetui.services.badge_actions import BadgeActions
from badgetui.services.common import Clock, ServiceError
from badgetui.services.config_io import ConfigService
from badgetui.services.migrate.apply import Applied, Applier
from badgetui.services.migrate.plan import (
    RULE_LESS_CHOICES,
    MigrationOptions,
    MigrationPlan,
    build_plan,
)
from badgetui.services.migrate.snapshot import read_snapshot
from badgetui.services.migrate.source import opened

__all__ = ["RULE_LESS_CHOICES", "MigrationOptions", "MigrationReport", "MigrationService"]


@dataclass(slots=True)
class MigrationReport:
    source: str
    dry_run: bool
    plan: MigrationPlan
    applied: Applied

    def as_dict(self) -> dict[str, Any]:
        plan, applied = self.plan, self.applied
        return {
            "source": self.source,
            "site": {"id": plan.site_id, "domain": plan.site_name},
            "dry_run": self.dry_run,
            "changed": applied.changed,
            "accounts": [a.as_dict() for a in plan.accounts],
            "templates": [{"provider": t.provider, "account": t.account,
                           "external_id": t.external_id, "name": t.name, "state": t.state,
                           "active": t.active, "requirements": len(t.config.requirements),
                           "penalties": len(t.config.penalties)} for t in plan.templates],
            "source_counts": self.source_counts(),
            "created": {k: v for k, v in applied.created.items() if v},
            "unchanged": {k: v for k, v in applied.unchanged.items() if v},
            "jobs": {k: v for k, v in applied.jobs.items() if v},
            "config_changes": applied.config_changes,
            "findings": [f.as_dict() for f in plan.findings],
        }

    def source_counts(self) -> dict[str, int]:
        plan = self.plan
        return {
            "accounts": len(plan.accounts),
            "templates": len(plan.templates),
            "requirements": sum(len(t.config.requirements) for t in plan.templates),
            "rules": sum(len(r.rules) for t in plan.templates for r in t.config.requirements)
            + sum(len(p.rules) for t in plan.templates for p in t.config.penalties),
            "penalties": sum(len(t.config.penalties) for t in plan.templates),
            "learners": len(plan.learners),
            "progress": len(plan.progress),
            "fulfillments": sum(len(p.fulfilled) for p in plan.progress),
            "badges": len(plan.badges),
        }


class MigrationService:
    def __init__(self, clock: Clock, config: ConfigService, badges: BadgeActions) -> None:
        self.applier = Applier(clock, config, badges)

    def migrate_credentials(self, url: str, options: MigrationOptions, *,
                            dry_run: bool = False) -> MigrationReport:
        if options.rule_less not in RULE_LESS_CHOICES:
            raise ServiceError(f"--rule-less must be one of {', '.join(RULE_LESS_CHOICES)}")
        with opened(url) as source:
            snapshot = read_snapshot(source, options.site)
            label = source.label
        plan = build_plan(snapshot, options)
        applied = self.applier.apply(plan, dry_run=dry_run, label=label)
        return MigrationReport(label, dry_run, plan, applied)
