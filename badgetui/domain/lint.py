"""Configuration lint: the mistakes that make a badge silently never (or always) fire."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from badgetui.domain.config import RuleConfig, TemplateConfig
from badgetui.domain.events import event_paths, has_path
from badgetui.domain.rules import (
    BOOLEAN_WORDS,
    MEMBERSHIP,
    ORDERING,
    as_moment,
    as_number,
    canonical,
    value_list,
)

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    template: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.template}: {self.message}"


def _rule_findings(
    where: str, event_type: str, rules: Iterable[RuleConfig], ignored: Collection[str]
) -> Iterable[tuple[Level, str]]:
    paths = event_paths(event_type)
    for rule in rules:
        if paths is None:
            continue
        if not has_path(paths, rule.path):
            yield "error", f"{where}: rule on {rule.path!r}, which {event_type} does not have"
            continue
        if rule.path in ignored:
            yield "warning", f"{where}: rule on ignored key path {rule.path!r}"
        kind = paths.get(rule.path)
        if rule.op in ORDERING:
            problem = _ordering_problem(rule, kind)
            if problem:
                yield "error", f"{where}: {problem}"
            continue
        if rule.op in ("exists", *MEMBERSHIP):
            if rule.op == "exists" and canonical(rule.value) not in ("true", "false"):
                yield "error", f"{where}: exists takes true or false, not {rule.value!r}"
            if rule.op in MEMBERSHIP and not value_list(rule.value):
                yield "error", f"{where}: {rule.op} on {rule.path} lists no value"
            continue
        if kind is bool and rule.value not in BOOLEAN_WORDS:
            yield "error", (
                f"{where}: {rule.path} is a boolean but the rule compares it with {rule.value!r}"
                " (use true/false)"
            )


def _ordering_problem(rule: RuleConfig, kind: object) -> str | None:
    """Why a gt/ge/lt/le rule can never compare as meant: a number against text or a date,
    a boolean, a value that is neither a number nor a date."""
    number, moment = as_number(rule.value), as_moment(rule.value)
    shown = f"{rule.path} {rule.op} {rule.value!r}"
    if kind is bool:
        return f"{shown}: {rule.path} is a boolean; order makes no sense (use eq)"
    if number is None and moment is None:
        return f"{shown}: {rule.value!r} is neither a number nor a date (gt/ge/lt/le never " \
               "compare text)"
    if kind in (int, float) and number is None:
        return f"{shown}: {rule.path} is a number, compared with a date"
    if kind is str and number is not None:
        return f"{shown}: {rule.path} is text (or a date), compared with a number"
    return None


def _contradiction(rules: list[RuleConfig]) -> str | None:
    """Why these rules can never all match one payload, or None."""
    eq: dict[str, str | None] = {}
    ne: dict[str, set[str | None]] = {}
    for rule in rules:
        value = canonical(rule.value)
        if rule.op == "eq":
            if rule.path in eq and eq[rule.path] != value:
                return f"{rule.path} must equal both {eq[rule.path]!r} and {value!r}"
            eq[rule.path] = value
        elif rule.op == "ne":
            ne.setdefault(rule.path, set()).add(value)
    for path, value in eq.items():
        if value in ne.get(path, set()):
            return f"{path} must both equal and not equal {value!r}"
    return None


def _unreachable(event_type: str, rules: list[RuleConfig]) -> str | None:
    """Why a rule can never match an event of this type (a path it lacks is always missing)."""
    paths = event_paths(event_type)
    if paths is None:
        return None
    for rule in rules:
        if rule.op == "exists" and canonical(rule.value) == "false":
            continue  # a path this type never has is always missing: exists false matches
        if not has_path(paths, rule.path):
            return f"{rule.path} is never present in {event_type}"
        if paths.get(rule.path) is bool and rule.op == "eq" and rule.value not in BOOLEAN_WORDS:
            return f"{rule.path} is a boolean and never equals {rule.value!r}"
    return None


def lint_template(
    tpl: TemplateConfig,
    *,
    configured_events: Collection[str],
    ignored_paths: Collection[str] = (),
    label: str | None = None,
) -> list[Finding]:
    """Findings for one template's requirements and penalties."""
    name = label or tpl.label
    out: list[Finding] = []

    def add(level: Level, message: str) -> None:
        out.append(Finding(level, name, message))

    if tpl.active and not tpl.requirements:
        add("error", "active but has no requirements: it can never be awarded")
    live_groups: dict[str, bool] = {}
    for req in tpl.requirements:
        where = f"requirement {req.id!r}"
        for level, msg in _rule_findings(where, req.event_type, req.rules, ignored_paths):
            add(level, msg)
        alive = True
        if req.event_type not in configured_events:
            add("warning", f"{where}: event type {req.event_type} is not in the configured events")
            alive = False
        why = _contradiction(req.rules) or _unreachable(req.event_type, req.rules)
        if why:
            add("error", f"{where} can never match: {why}")
            alive = False
        group = req.group or "?"
        live_groups[group] = live_groups.get(group, False) or alive
    dead = sorted(g for g, alive in live_groups.items() if not alive)
    if dead:
        add("error", f"can never complete: no requirement of group {', '.join(dead)} can match")
    for index, pen in enumerate(tpl.penalties, start=1):
        where = f"penalty {index}"
        if not pen.rules:
            add("warning", f"{where} has no rules: it fires on every {pen.event_type} event")
        for level, msg in _rule_findings(where, pen.event_type, pen.rules, ignored_paths):
            add(level, msg)
        if pen.event_type not in configured_events:
            add("warning", f"{where}: event type {pen.event_type} is not in the configured events")
    return out
