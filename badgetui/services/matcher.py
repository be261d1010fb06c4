"""The active configuration compiled for fast matching.

Per event type, requirements and penalties are indexed by their most selective `eq` rule, so an
event is evaluated only against the candidates its own values point at (plus the few items with
no `eq` rule). The Open edX code instead queries every requirement for every event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from badgetui.domain.progress import group_map
from badgetui.domain.rules import Rule, all_match, canonical, resolve
from badgetui.store.models import (
    DataRule,
    Penalty,
    PenaltyRequirement,
    Requirement,
    Template,
)


@dataclass(slots=True)
class CompiledRequirement:
    id: int
    template_id: int
    key: str
    group: str
    event_type: str
    description: str
    rules: tuple[Rule, ...]


@dataclass(slots=True)
class CompiledPenalty:
    id: int
    template_id: int
    event_type: str
    description: str
    rules: tuple[Rule, ...]
    requirement_ids: frozenset[int]

    @property
    def label(self) -> str:
        return f'"{self.description}"' if self.description else f"#{self.id}"


@dataclass(slots=True)
class CompiledTemplate:
    id: int
    account_id: int
    provider: str
    external_id: str
    name: str
    description: str
    image_url: str
    #: Lifetime of an award in days (None: never expires), from the template.
    expires_in_days: int | None = None
    requirements: dict[int, CompiledRequirement] = field(default_factory=dict)
    groups: dict[str, frozenset[int]] = field(default_factory=dict)

    @property
    def group_of(self) -> dict[int, str]:
        return {r.id: r.group for r in self.requirements.values()}


class _Ruled(Protocol):
    rules: tuple[Rule, ...]


@dataclass(slots=True)
class RuleIndex:
    """Items of one event type, bucketed by one `eq` rule each; the rest are always tried."""

    by_path: dict[tuple[str, ...], dict[str, list[Any]]] = field(default_factory=dict)
    always: list[Any] = field(default_factory=list)

    @classmethod
    def build(cls, items: Iterable[_Ruled]) -> RuleIndex:
        items = list(items)
        freq: Counter[tuple[tuple[str, ...], str]] = Counter()
        for item in items:
            for rule in item.rules:
                if rule.op == "eq" and rule.expected is not None:
                    freq[(rule.parts, rule.expected)] += 1
        index = cls()
        for item in items:
            keys = [
                (freq[(r.parts, r.expected)], r.parts, r.expected)
                for r in item.rules
                if r.op == "eq" and r.expected is not None
            ]
            if not keys:
                index.always.append(item)
                continue
            _, parts, value = min(keys)
            index.by_path.setdefault(parts, {}).setdefault(value, []).append(item)
        return index

    def matches(self, payload: Mapping[str, Any]) -> list[Any]:
        """Items whose rules all match the payload, in a stable order."""
        found = [item for item in self.always if all_match(item.rules, payload)]
        for parts, buckets in self.by_path.items():
            value = canonical(resolve(payload, parts))
            if value is None:
                continue
            for item in buckets.get(value, ()):
                if all_match(item.rules, payload):
                    found.append(item)
        return found


@dataclass(slots=True)
class Matcher:
    """Everything processing needs about the active configuration, loaded once."""

    generation: int
    templates: dict[int, CompiledTemplate]
    requirements: dict[str, RuleIndex]
    penalties: dict[str, RuleIndex]

    def match(
        self, event_type: str, payload: Mapping[str, Any]
    ) -> tuple[list[CompiledRequirement], list[CompiledPenalty]]:
        reqs = self.requirements.get(event_type)
        pens = self.penalties.get(event_type)
        return (
            reqs.matches(payload) if reqs else [],
            pens.matches(payload) if pens else [],
        )


def compile_active(generation: int, only: Sequence[int] | None = None) -> Matcher:
    """Load active, usable templates with their requirements, rules and penalties (5 queries).
    `only`: just these templates, active or not (a backfill's preview of one template)."""
    templates: dict[int, CompiledTemplate] = {}
    usable = ~Template.stale & ~Template.deleted
    where = usable & Template.id.in_(list(only)) if only is not None else (
        Template.is_active & usable)
    for t in Template.select().where(where):
        templates[t.id] = CompiledTemplate(
            t.id, t.account_id, t.provider, t.external_id, t.name, t.description, t.image_url,
            t.expires_in_days,
        )
    if not templates:
        return Matcher(generation, {}, {}, {})
    tids = list(templates)
    req_rules: dict[int, list[Rule]] = defaultdict(list)
    pen_rules: dict[int, list[Rule]] = defaultdict(list)
    rule_rows = (
        DataRule.select()
        .join(Requirement, on=(DataRule.requirement == Requirement.id))
        .where(Requirement.template.in_(tids))
        .order_by(DataRule.position, DataRule.id)
    )
    for rule in rule_rows:
        req_rules[rule.requirement_id].append(Rule(rule.path, rule.op, rule.value))
    pen_rule_rows = (
        DataRule.select()
        .join(Penalty, on=(DataRule.penalty == Penalty.id))
        .where(Penalty.template.in_(tids))
        .order_by(DataRule.position, DataRule.id)
    )
    for rule in pen_rule_rows:
        pen_rules[rule.penalty_id].append(Rule(rule.path, rule.op, rule.value))

    by_type_req: dict[str, list[CompiledRequirement]] = defaultdict(list)
    for r in Requirement.select().where(Requirement.template.in_(tids)).order_by(
        Requirement.position, Requirement.id
    ):
        compiled = CompiledRequirement(
            r.id, r.template_id, r.key, r.group, r.event_type, r.description,
            tuple(req_rules.get(r.id, ())),
        )
        templates[r.template_id].requirements[r.id] = compiled
        by_type_req[r.event_type].append(compiled)
    for tpl in templates.values():
        tpl.groups = group_map((r.id, r.group) for r in tpl.requirements.values())

    links: dict[int, set[int]] = defaultdict(set)
    for link in (
        PenaltyRequirement.select(PenaltyRequirement.penalty, PenaltyRequirement.requirement)
        .join(Penalty)
        .where(Penalty.template.in_(tids))
    ):
        links[link.penalty_id].add(link.requirement_id)
    by_type_pen: dict[str, list[CompiledPenalty]] = defaultdict(list)
    for p in Penalty.select().where(Penalty.template.in_(tids)).order_by(
        Penalty.position, Penalty.id
    ):
        own = templates[p.template_id].requirements
        by_type_pen[p.event_type].append(
            CompiledPenalty(
                p.id, p.template_id, p.event_type, p.description,
                tuple(pen_rules.get(p.id, ())),
                frozenset(r for r in links.get(p.id, ()) if r in own),
            )
        )
    return Matcher(
        generation,
        templates,
        {et: RuleIndex.build(items) for et, items in by_type_req.items()},
        {et: RuleIndex.build(items) for et, items in by_type_pen.items()},
    )
