"""Badge configuration as code: export, declarative all-or-nothing import, lint."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

from pydantic import ValidationError

from badgetui.domain.config import (
    BadgeConfig,
    PenaltyConfig,
    RequirementConfig,
    RuleConfig,
    TemplateConfig,
    dump_config,
)
from badgetui.domain.events import EVENT_SPECS
from badgetui.domain.lint import Finding, lint_template
from badgetui.domain.progress import next_free_group
from badgetui.services.common import (
    Clock,
    ServiceError,
    bump_config_generation,
    current_database,
    to_db,
)
from badgetui.services.impact import TemplateImpact, template_impact
from badgetui.services.processing import recompute_progress
from badgetui.services.templates import activation_problem, audit, mark_live
from badgetui.store.models import (
    DataRule,
    Penalty,
    PenaltyRequirement,
    ProviderAccount,
    Requirement,
    Template,
)


class ConfigImportError(ServiceError):
    """The import was refused; `problems` lists every reason, nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"configuration refused ({len(problems)} {noun}): " + "; ".join(problems))


@dataclass(slots=True)
class ImportPlan:
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    applied: bool = False
    #: For each active template the import changes: who gains, loses or qualifies (a dry run).
    impacts: list[TemplateImpact] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _template_config(tpl: Template, account_label: str | None) -> TemplateConfig:
    reqs = list(
        Requirement.select().where(Requirement.template == tpl.id)
        .order_by(Requirement.position, Requirement.id)
    )
    rules: dict[tuple[str, int], list[RuleConfig]] = defaultdict(list)
    for rule in DataRule.select().where(
        DataRule.requirement.in_([r.id for r in reqs])
        | DataRule.penalty.in_(Penalty.select(Penalty.id).where(Penalty.template == tpl.id))
    ).order_by(DataRule.position, DataRule.id):
        owner = ("r", rule.requirement_id) if rule.requirement_id else ("p", rule.penalty_id)
        rules[owner].append(RuleConfig(path=rule.path, op=rule.op, value=rule.value))
    keys = {r.id: r.key for r in reqs}
    order = {r.id: i for i, r in enumerate(reqs)}
    links: dict[int, list[int]] = defaultdict(list)
    pens = list(
        Penalty.select().where(Penalty.template == tpl.id).order_by(Penalty.position, Penalty.id)
    )
    for link in PenaltyRequirement.select().where(
        PenaltyRequirement.penalty.in_([p.id for p in pens])
    ):
        links[link.penalty_id].append(link.requirement_id)
    return TemplateConfig(
        provider=tpl.provider,
        external_id=tpl.external_id,
        account=account_label,
        active=tpl.is_active,
        requirements=[
            RequirementConfig(
                id=r.key, event_type=r.event_type, group=r.group, description=r.description,
                rules=rules[("r", r.id)],
            )
            for r in reqs
        ],
        penalties=[
            PenaltyConfig(
                event_type=p.event_type,
                requirements=[keys[rid] for rid in sorted(links[p.id], key=order.__getitem__)],
                description=p.description,
                rules=rules[("p", p.id)],
            )
            for p in pens
        ],
    )


def current_config() -> BadgeConfig:
    """The stored configuration of every template that still exists at its provider."""
    rows = list(
        Template.select(Template, ProviderAccount)
        .join(ProviderAccount)
        .where(~Template.deleted)
    )
    holders: dict[tuple[str, str], int] = defaultdict(int)
    for tpl in rows:
        holders[(tpl.provider, tpl.external_id)] += 1
    rows.sort(key=lambda t: (t.provider, t.external_id, t.account.identifier))
    return BadgeConfig(
        templates=[
            _template_config(
                t, t.account.identifier if holders[(t.provider, t.external_id)] > 1 else None
            )
            for t in rows
        ]
    )


def export_config() -> str:
    return dump_config(current_config())


def _pydantic_problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        out.append(f"{loc or 'file'}: {err['msg']}")
    return out


def parse_config(text: str) -> BadgeConfig:
    config, _, problems = _parse_collecting(text)
    if problems:
        raise ConfigImportError(problems)
    return config


def _parse_collecting(text: str) -> tuple[BadgeConfig, list[int], list[str]]:
    """The valid part of a file, each template's position in it, and every shape problem.

    Templates that are well-formed on their own are kept even when others are not, so the
    import can list their problems too (all problems at once, formats.md)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigImportError([f"not JSON ({exc.msg} at line {exc.lineno})"]) from None
    try:
        config = BadgeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
    else:
        return config, list(range(len(config.templates))), []
    templates: list[TemplateConfig] = []
    positions: list[int] = []
    items = raw.get("templates") if isinstance(raw, dict) else None
    for index, item in enumerate(items if isinstance(items, list) else []):
        try:
            templates.append(TemplateConfig.model_validate(item))
        except ValidationError:
            continue
        positions.append(index)
    return BadgeConfig(templates=templates), positions, problems


class ConfigService:
    def __init__(
        self, clock: Clock, events: Collection[str], ignored_paths: Collection[str] = ()
    ) -> None:
        self.clock = clock
        self.events = frozenset(events)
        self.ignored_paths = frozenset(ignored_paths)

    def known_event(self, event_type: str) -> bool:
        return event_type in EVENT_SPECS or event_type in self.events

    # -- lint ----------------------------------------------------------------------------
    def lint(self, config: BadgeConfig | None = None) -> list[Finding]:
        config = config or current_config()
        findings: list[Finding] = []
        for tpl in config.templates:
            findings.extend(lint_template(
                _with_groups(tpl), configured_events=self.events, ignored_paths=self.ignored_paths
            ))
        return findings

    # -- import --------------------------------------------------------------------------
    def import_text(self, text: str, *, dry_run: bool = False) -> ImportPlan:
        config, positions, problems = _parse_collecting(text)
        return self._import(config, positions, problems, dry_run=dry_run)

    def import_config(self, config: BadgeConfig, *, dry_run: bool = False) -> ImportPlan:
        """Validate everything, then apply everything in one transaction (or nothing)."""
        return self._import(config, list(range(len(config.templates))), [], dry_run=dry_run)

    def _import(
        self, config: BadgeConfig, positions: list[int], problems: list[str], *, dry_run: bool
    ) -> ImportPlan:
        problems = list(problems)
        resolved: list[tuple[TemplateConfig, Template]] = []
        seen: dict[int, str] = {}
        for index, entry in zip(positions, config.templates, strict=True):
            where = f"templates[{index}] {entry.label}"
            tpl = self._resolve(entry, where, problems)
            if tpl is None:
                continue
            if tpl.id in seen:
                problems.append(f"{where}: listed twice (also {seen[tpl.id]})")
                continue
            seen[tpl.id] = where
            resolved.append((_with_groups(entry), tpl))
        owners = self._requirement_owners(resolved)
        plan = ImportPlan()
        for entry, tpl in resolved:
            label = f"{entry.provider}:{entry.external_id}"
            problems.extend(self._check(entry, tpl, label, owners))
            for finding in lint_template(
                entry, configured_events=self.events, ignored_paths=self.ignored_paths,
                label=label,
            ):
                if finding.level == "error" and "no requirements" not in finding.message:
                    problems.append(f"{label}: {finding.message}")
                elif finding.level == "warning":
                    plan.warnings.append(str(finding))
        if problems:
            raise ConfigImportError(problems)
        for entry, tpl in resolved:
            changes = self._diff(entry, tpl)
            plan.changes.extend(changes)
            if dry_run and changes and tpl.is_active and entry.active:
                plan.impacts.append(template_impact(entry, tpl))
        if dry_run or not plan.changes:
            return plan
        database = current_database()
        with database.atomic():
            changed_templates = []
            for entry, tpl in resolved:
                if self._apply(entry, tpl):
                    changed_templates.append(tpl.id)
            bump_config_generation()
            recompute_progress(changed_templates)
            audit(self.clock, "config.import", f"{len(resolved)} templates",
                  {"changes": plan.changes})
        plan.applied = True
        return plan

    def _resolve(self, entry: TemplateConfig, where: str, problems: list[str]) -> Template | None:
        query = (
            Template.select(Template, ProviderAccount)
            .join(ProviderAccount)
            .where(
                (Template.provider == entry.provider)
                & (Template.external_id == entry.external_id)
            )
        )
        if entry.account is not None:
            query = query.where(
                (ProviderAccount.identifier == entry.account)
                | (ProviderAccount.name == entry.account)
            )
        found = list(query)
        if len(found) > 1:
            # export names the account only when several live templates share the id
            live = [t for t in found if not t.deleted]
            found = live if len(live) == 1 else found
        if not found:
            problems.append(f"{where}: unknown template (not brought in by a sync)")
            return None
        if len(found) > 1:
            accounts = ", ".join(sorted(t.account.identifier for t in found))
            problems.append(f"{where}: held by several accounts ({accounts}); add \"account\"")
            return None
        if found[0].deleted:
            problems.append(f"{where}: template was deleted at the provider")
            return None
        return found[0]

    def _requirement_owners(
        self, resolved: list[tuple[TemplateConfig, Template]]
    ) -> dict[str, list[str]]:
        owners: dict[str, list[str]] = defaultdict(list)
        for entry, _ in resolved:
            for req in entry.requirements:
                owners[req.id].append(f"{entry.provider}:{entry.external_id}")
        return owners

    def _check(
        self, entry: TemplateConfig, tpl: Template, label: str, owners: dict[str, list[str]]
    ) -> list[str]:
        problems = []
        ids = [r.id for r in entry.requirements]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            problems.append(f"{label}: requirement id {dup!r} used more than once")
        for req in entry.requirements:
            if not self.known_event(req.event_type):
                problems.append(
                    f"{label}: requirement {req.id!r}: unknown event type {req.event_type}"
                )
        for index, pen in enumerate(entry.penalties, start=1):
            if not self.known_event(pen.event_type):
                problems.append(f"{label}: penalty {index}: unknown event type {pen.event_type}")
            for rid in pen.requirements:
                if rid in ids:
                    continue
                others = [o for o in owners.get(rid, []) if o != label]
                if others:
                    problems.append(
                        f"{label}: penalty {index} names requirement {rid!r} of another template"
                        f" ({others[0]}); a penalty may only reset its own template's requirements"
                    )
                else:
                    problems.append(f"{label}: penalty {index} names unknown requirement {rid!r}")
        if entry.active:
            if not entry.requirements:
                problems.append(f"{label}: cannot be activated: it has no requirements")
            elif not tpl.is_active:  # staying active (e.g. while stale) is no activation
                reason = activation_problem(tpl)
                if reason and "no requirements" not in reason:
                    problems.append(f"{label}: cannot be activated: {reason}")
        return problems

    def _diff(self, entry: TemplateConfig, tpl: Template) -> list[str]:
        label = f"template {tpl.id} {tpl.provider}:{tpl.external_id} ({tpl.name})"
        current = _template_config(tpl, entry.account)
        changes = []
        if current.active != entry.active:
            changes.append(f"{label}: {'activate' if entry.active else 'deactivate'}")
        old = {r.id: r for r in current.requirements}
        new = {r.id: r for r in entry.requirements}
        # In file order (removals in stored order), so a plan reads the same every time.
        for rid in new:
            if rid not in old:
                changes.append(f"{label}: add requirement {rid!r}")
        for rid in old:
            if rid not in new:
                changes.append(f"{label}: remove requirement {rid!r} and its progress")
        for rid in new:
            if rid in old and old[rid] != new[rid]:
                changes.append(f"{label}: change requirement {rid!r}")
        if [r.id for r in current.requirements] != [r.id for r in entry.requirements] and not (
            new.keys() ^ old.keys()
        ):
            changes.append(f"{label}: reorder requirements")
        if current.penalties != _stored_penalties(entry):
            changes.append(
                f"{label}: set {len(entry.penalties)} penalties (was {len(current.penalties)})"
            )
        return sorted(set(changes), key=changes.index)

    def _apply(self, entry: TemplateConfig, tpl: Template) -> bool:
        """Make one template exactly as the entry says; True when requirements changed."""
        now = to_db(self.clock())
        current = _template_config(tpl, entry.account)
        existing = {
            r.key: r for r in Requirement.select().where(Requirement.template == tpl.id)
        }
        wanted = {r.id for r in entry.requirements}
        req_changed = False
        gone = [r.id for key, r in existing.items() if key not in wanted]
        if gone:
            Requirement.delete().where(Requirement.id.in_(gone)).execute()
            req_changed = True
        old = {r.id: r for r in current.requirements}
        ids: dict[str, int] = {}
        for position, req in enumerate(entry.requirements):
            row = existing.get(req.id)
            if row is None:
                row = Requirement.create(
                    template=tpl.id, key=req.id, event_type=req.event_type, group=req.group,
                    description=req.description, position=position,
                )
                _write_rules(req.rules, requirement=row.id)
                req_changed = True
            elif old[req.id] != req or row.position != position:
                Requirement.update(
                    event_type=req.event_type, group=req.group, description=req.description,
                    position=position,
                ).where(Requirement.id == row.id).execute()
                if old[req.id].rules != req.rules:
                    DataRule.delete().where(DataRule.requirement == row.id).execute()
                    _write_rules(req.rules, requirement=row.id)
                req_changed = req_changed or old[req.id].group != req.group
            ids[req.id] = row.id
        if current.penalties != _stored_penalties(entry):
            Penalty.delete().where(Penalty.template == tpl.id).execute()
            for position, pen in enumerate(entry.penalties):
                row = Penalty.create(
                    template=tpl.id, event_type=pen.event_type, description=pen.description,
                    position=position,
                )
                _write_rules(pen.rules, penalty=row.id)
                PenaltyRequirement.insert_many(
                    [(row.id, ids[rid]) for rid in dict.fromkeys(pen.requirements)],
                    fields=[PenaltyRequirement.penalty, PenaltyRequirement.requirement],
                ).execute()
        if tpl.is_active != entry.active:
            Template.update(is_active=entry.active, updated_at=now).where(
                Template.id == tpl.id
            ).execute()
            if entry.active:
                mark_live(tpl.id)
        return req_changed


def _write_rules(
    rules: list[RuleConfig], *, requirement: int | None = None, penalty: int | None = None
) -> None:
    if not rules:
        return
    DataRule.insert_many(
        [(requirement, penalty, r.path, r.op, r.value, i) for i, r in enumerate(rules)],
        fields=[DataRule.requirement, DataRule.penalty, DataRule.path, DataRule.op,
                DataRule.value, DataRule.position],
    ).execute()


def _stored_penalties(entry: TemplateConfig) -> list[PenaltyConfig]:
    """The entry's penalties as they read back once stored: each names its requirements once,
    in the template's requirement order (so re-importing the same file changes nothing)."""
    order = {r.id: i for i, r in enumerate(entry.requirements)}
    return [
        pen.model_copy(update={"requirements": sorted(
            dict.fromkeys(pen.requirements), key=lambda rid: order.get(rid, len(order))
        )})
        for pen in entry.penalties
    ]


def _with_groups(entry: TemplateConfig) -> TemplateConfig:
    """The entry with every requirement's group filled in (default: the next unused letter)."""
    used = [r.group for r in entry.requirements if r.group]
    requirements = []
    for req in entry.requirements:
        if req.group is None:
            group = next_free_group(used)
            used.append(group)
            req = req.model_copy(update={"group": group})
        requirements.append(req)
    return entry.model_copy(update={"requirements": requirements})
