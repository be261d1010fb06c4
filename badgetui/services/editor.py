"""Template detail, requirement and penalty editing, and the rule tester (for the console).

Edits go through the configuration import of one template, so the editor, the CLI and
config-as-code share one set of validation rules and every change is all-or-nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from badgetui.domain.config import PenaltyConfig, RequirementConfig, RuleConfig, TemplateConfig
from badgetui.domain.events import EVENT_SPECS, event_paths, parse_object
from badgetui.domain.lint import Finding
from badgetui.domain.progress import next_free_group
from badgetui.domain.rules import Rule, canonical, resolve
from badgetui.services.common import Clock, NotFound, ServiceError
from badgetui.services.config_io import BadgeConfig, ConfigService, _template_config
from badgetui.services.templates import activation_problem
from badgetui.store.models import IntakeRecord, Template

CREDLY_WEB = "https://www.credly.com/"
CREDLY_SANDBOX_WEB = "https://sandbox.credly.com/"
ACCREDIBLE_WEB = "https://dashboard.accredible.com/"
ACCREDIBLE_SANDBOX_WEB = "https://sandbox.dashboard.accredible.com/"


@dataclass(slots=True)
class TemplateDetail:
    id: int
    provider: str
    account: str
    external_id: str
    name: str
    description: str
    image_url: str
    state: str
    active: bool
    stale: bool
    deleted: bool
    dashboard_url: str
    config: TemplateConfig
    findings: list[Finding]
    activation_problem: str | None


@dataclass(slots=True)
class RuleVerdict:
    rule: str
    actual: str | None
    matched: bool


@dataclass(slots=True)
class ItemVerdict:
    kind: str  # requirement | penalty
    label: str
    event_type: str
    type_matches: bool
    matched: bool
    first_failing: int | None
    rules: list[RuleVerdict] = field(default_factory=list)


@dataclass(slots=True)
class TestResult:
    status: str
    reason: str
    verdicts: list[ItemVerdict]


class EditorService:
    def __init__(self, clock: Clock, config: ConfigService, *, sandbox: bool = False) -> None:
        self.clock = clock
        self.config = config
        self.sandbox = sandbox

    def _template(self, template_id: int) -> Template:
        tpl = Template.get_or_none(Template.id == template_id)
        if tpl is None:
            raise NotFound(f"no template {template_id}")
        return tpl

    def dashboard_url(self, tpl: Template) -> str:
        if tpl.provider == "credly":
            web = CREDLY_SANDBOX_WEB if self.sandbox else CREDLY_WEB
            return (f"{web}mgmt/organizations/{tpl.account.identifier}/badges/templates/"
                    f"{tpl.external_id}/details")
        web = ACCREDIBLE_SANDBOX_WEB if self.sandbox else ACCREDIBLE_WEB
        return f"{web}issuer/dashboard/group/{tpl.external_id}/information-and-appearance"

    def detail(self, template_id: int) -> TemplateDetail:
        tpl = self._template(template_id)
        entry = _template_config(tpl, tpl.account.identifier)
        findings = self.config.lint(BadgeConfig(templates=[entry]))
        return TemplateDetail(
            tpl.id, tpl.provider, tpl.account.name, tpl.external_id, tpl.name, tpl.description,
            tpl.image_url, tpl.state, tpl.is_active, tpl.stale, tpl.deleted,
            self.dashboard_url(tpl), entry, findings,
            None if tpl.is_active else activation_problem(tpl),
        )

    def key_paths(self, event_type: str, ignored: Collection[str] = ()) -> list[tuple[str, str]]:
        """(path, type name) the rule editor offers for an event type."""
        paths = event_paths(event_type) or {}
        return [(p, t.__name__) for p, t in paths.items() if p not in ignored]

    # -- editing -------------------------------------------------------------------------
    def _save(self, tpl: Template, entry: TemplateConfig) -> TemplateConfig:
        self.config.import_config(BadgeConfig(templates=[entry]))
        return _template_config(self._template(tpl.id), tpl.account.identifier)

    def save_requirement(
        self,
        template_id: int,
        key: str | None,
        *,
        event_type: str,
        group: str | None = None,
        description: str = "",
        rules: list[tuple[str, str, str]] | None = None,
        new_key: str | None = None,
    ) -> TemplateConfig:
        """Add (key None) or replace a requirement; refused with every problem listed."""
        tpl = self._template(template_id)
        entry = _template_config(tpl, tpl.account.identifier)
        requirements = list(entry.requirements)
        used = [r.group for r in requirements if r.id != key and r.group]
        try:
            req = RequirementConfig(
                id=new_key or key or _next_key(r.id for r in requirements),
                event_type=event_type,
                group=group or (next(r.group for r in requirements if r.id == key)
                                if key else next_free_group(used)),
                description=description,
                rules=[RuleConfig(path=p, op=o, value=v) for p, o, v in rules or []],
            )
        except ValueError as exc:
            raise ServiceError(_first_error(exc)) from None
        if key is None:
            requirements.append(req)
        else:
            index = next((i for i, r in enumerate(requirements) if r.id == key), None)
            if index is None:
                raise NotFound(f"template {template_id} has no requirement {key!r}")
            requirements[index] = req
            if req.id != key:
                entry = entry.model_copy(update={"penalties": [
                    p.model_copy(update={"requirements": [req.id if r == key else r
                                                          for r in p.requirements]})
                    for p in entry.penalties]})
        return self._save(tpl, entry.model_copy(update={"requirements": requirements}))

    def delete_requirement(self, template_id: int, key: str) -> TemplateConfig:
        tpl = self._template(template_id)
        entry = _template_config(tpl, tpl.account.identifier)
        if not any(r.id == key for r in entry.requirements):
            raise NotFound(f"template {template_id} has no requirement {key!r}")
        penalties = []
        for pen in entry.penalties:
            remaining = [r for r in pen.requirements if r != key]
            if remaining:
                penalties.append(pen.model_copy(update={"requirements": remaining}))
        return self._save(tpl, entry.model_copy(update={
            "requirements": [r for r in entry.requirements if r.id != key],
            "penalties": penalties,
        }))

    def save_penalty(
        self,
        template_id: int,
        index: int | None,
        *,
        event_type: str,
        requirements: list[str],
        description: str = "",
        rules: list[tuple[str, str, str]] | None = None,
    ) -> TemplateConfig:
        """Add (index None) or replace the penalty at `index` (0-based)."""
        tpl = self._template(template_id)
        entry = _template_config(tpl, tpl.account.identifier)
        own = {r.id for r in entry.requirements}
        foreign = [r for r in requirements if r not in own]
        if foreign:
            raise ServiceError(
                f"a penalty may only reset this template's requirements; not: {', '.join(foreign)}")
        try:
            pen = PenaltyConfig(
                event_type=event_type, requirements=requirements, description=description,
                rules=[RuleConfig(path=p, op=o, value=v) for p, o, v in rules or []],
            )
        except ValueError as exc:
            raise ServiceError(_first_error(exc)) from None
        penalties = list(entry.penalties)
        if index is None:
            penalties.append(pen)
        elif 0 <= index < len(penalties):
            penalties[index] = pen
        else:
            raise NotFound(f"template {template_id} has no penalty {index + 1}")
        return self._save(tpl, entry.model_copy(update={"penalties": penalties}))

    def delete_penalty(self, template_id: int, index: int) -> TemplateConfig:
        tpl = self._template(template_id)
        entry = _template_config(tpl, tpl.account.identifier)
        if not 0 <= index < len(entry.penalties):
            raise NotFound(f"template {template_id} has no penalty {index + 1}")
        penalties = [p for i, p in enumerate(entry.penalties) if i != index]
        return self._save(tpl, entry.model_copy(update={"penalties": penalties}))

    # -- rule tester ---------------------------------------------------------------------
    def recent_events(self, limit: int = 50, event_type: str | None = None) -> list[dict[str, Any]]:
        """Recent events with a payload, newest first, for the tester to pick from."""
        query = (IntakeRecord.select().where(IntakeRecord.payload.is_null(False)
                                             & (IntakeRecord.outcome != "rejected"))
                 .order_by(IntakeRecord.id.desc()).limit(limit))
        if event_type:
            query = query.where(IntakeRecord.event_type == event_type)
        out = []
        for rec in query:
            out.append({
                "id": rec.ref_id, "event_type": rec.event_type, "username": rec.username,
                "outcome": rec.outcome,
                "event": {"id": rec.ref_id, "event_type": rec.event_type,
                          "data": {_data_key(rec.event_type): json.loads(rec.payload)}},
            })
        return out

    def test_event(self, template_id: int, event: str | dict[str, Any]) -> TestResult:
        """Evaluate an event against every requirement and penalty of a template."""
        tpl = self._template(template_id)
        entry = _template_config(tpl, tpl.account.identifier)
        if isinstance(event, str):
            try:
                event = json.loads(event)
            except json.JSONDecodeError as exc:
                return TestResult("rejected", f"not JSON ({exc.msg} at column {exc.colno})", [])
        known = frozenset(EVENT_SPECS) | self.config.events
        parsed = parse_object(event, known, datetime.now(UTC))
        if parsed.status == "rejected":
            return TestResult("rejected", parsed.reason, [])
        payload = parsed.payload or {}
        verdicts = [
            _verdict("requirement", f"{r.id} (group {r.group})", r.event_type, r.rules,
                     parsed.event_type or "", payload)
            for r in entry.requirements
        ]
        verdicts += [
            _verdict("penalty", f"penalty {i} resets {', '.join(p.requirements)}",
                     p.event_type, p.rules, parsed.event_type or "", payload)
            for i, p in enumerate(entry.penalties, start=1)
        ]
        return TestResult(parsed.status, parsed.reason, verdicts)


def _verdict(
    kind: str, label: str, event_type: str, rules: list[RuleConfig], actual_type: str,
    payload: dict[str, Any],
) -> ItemVerdict:
    type_ok = event_type == actual_type
    results = []
    first = None
    for index, rc in enumerate(rules):
        rule = Rule(rc.path, rc.op, rc.value)
        ok = type_ok and rule.matches(payload)
        if not ok and first is None:
            first = index
        results.append(RuleVerdict(rule.describe(), canonical(resolve(payload, rule.parts)), ok))
    return ItemVerdict(kind, label, event_type, type_ok, type_ok and first is None, first,
                       results)


def _data_key(event_type: str | None) -> str:
    spec = EVENT_SPECS.get(event_type or "")
    return spec.data_key if spec else "payload"


def _next_key(existing: Any) -> str:
    taken = set(existing)
    n = 1
    while f"r{n}" in taken:
        n += 1
    return f"r{n}"


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
