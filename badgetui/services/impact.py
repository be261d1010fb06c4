"""Impact of a configuration change on an active template, before it is made (issue 13).

From what is stored: each learner's fulfillments, and for a requirement whose rules change,
the event that fulfilled it (the intake log keeps its payload) checked against the new rules.
A fulfillment survives when its requirement stays and its event still matches; progress is
then counted in the new groups. It answers, per template:
- `lose`: learners who would lose a fulfillment (its requirement removed: the import removes
  its progress);
- `mismatch`: learners holding a fulfillment whose event the new rules would not match (the
  import keeps it: it was earned under the old rules; listed so nobody is surprised);
- `gain`: learners whose fulfilled-group count rises (requirements moved into fulfilled
  groups, a group merged away);
- `qualify`: learners not holding the badge whose every group would be fulfilled at once
  (awarded by their next event of the template, or by `badgetui backfill`);
- `unqualify`: learners with complete progress who would no longer have it.
New requirements take effect for new events (semantics.md); what the past would give them is
the backfill preview's question.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

from badgetui.domain.config import RequirementConfig, TemplateConfig
from badgetui.domain.rules import Rule, all_match
from badgetui.services.common import chunked
from badgetui.store.models import (
    DataRule,
    Fulfillment,
    IntakeRecord,
    Progress,
    Requirement,
    Template,
)

IN_CHUNK = 500


@dataclass(slots=True)
class TemplateImpact:
    template_id: int
    name: str
    learners: int
    lose: int
    mismatch: int
    gain: int
    qualify: int
    unqualify: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"impact on template {self.template_id} ({self.name}), {self.learners:,} "
                f"learners with progress: {self.lose:,} would lose progress, {self.gain:,} "
                f"gain, {self.qualify:,} would have every group fulfilled at once, "
                f"{self.unqualify:,} would no longer; {self.mismatch:,} hold a fulfillment "
                "the new rules would not match (kept)")


def _rules(req: RequirementConfig) -> tuple[Rule, ...]:
    return tuple(Rule(r.path, r.op, r.value) for r in req.rules)


def template_impact(entry: TemplateConfig, tpl: Template) -> TemplateImpact:
    started = time.perf_counter()
    new = {r.id: r for r in entry.requirements}
    new_groups = {r.id: r.group or r.id for r in entry.requirements}
    total_new = len(set(new_groups.values()))
    current = {rid: (key, group) for rid, key, group in Requirement.select(
        Requirement.id, Requirement.key, Requirement.group).where(
        Requirement.template == tpl.id).tuples()}
    stored_rules: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for rid, path, op, value in DataRule.select(
            DataRule.requirement, DataRule.path, DataRule.op, DataRule.value).where(
            DataRule.requirement.in_(list(current) or [0])).order_by(
            DataRule.position, DataRule.id).tuples():
        stored_rules[rid].append((path, op, value))
    recheck = {rid for rid, (key, _) in current.items() if key in new and [
        (r.path, r.op, r.value) for r in new[key].rules] != stored_rules.get(rid, [])}
    total_old = len({group for _, group in current.values()})

    holding = dict(Progress.select(Progress.id, Progress.badge.is_null(False)).where(
        Progress.template == tpl.id).tuples())
    fulfilled: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for pid, rid, event_id in Fulfillment.select(
            Fulfillment.progress, Fulfillment.requirement, Fulfillment.event_id).join(
            Progress).where(Progress.template == tpl.id).tuples():
        fulfilled[pid].append((rid, event_id))
    failing = _failing(fulfilled, recheck, current, new)

    lose = mismatch = gain = qualify = unqualify = 0
    for pid, items in fulfilled.items():
        old_groups = {current[rid][1] for rid, _ in items if rid in current}
        kept = [(rid, ev) for rid, ev in items if rid in current and current[rid][0] in new]
        if any(item in failing for item in kept):
            mismatch += 1
        groups = {new_groups[current[rid][0]] for rid, _ in kept}
        holds = bool(holding.get(pid))
        if len(kept) < len(items):
            lose += 1
        if len(groups) > len(old_groups):
            gain += 1
        now_complete = bool(total_new) and len(groups) == total_new
        was_complete = bool(total_old) and len(old_groups) == total_old
        if now_complete and not was_complete and not holds:
            qualify += 1
        if was_complete and not now_complete:
            unqualify += 1
    return TemplateImpact(tpl.id, tpl.name, len(holding), lose, mismatch, gain, qualify,
                          unqualify, time.perf_counter() - started)


def _failing(fulfilled: dict[int, list[tuple[int, str]]], recheck: set[int],
             current: dict[int, tuple[str, str]], new: dict[str, RequirementConfig]
             ) -> set[tuple[int, str]]:
    """Fulfillments of requirements whose rules change that the new rules would not have
    matched: their fulfilling event's payload, from the intake log, is checked again."""
    wanted = [(rid, ev) for items in fulfilled.values() for rid, ev in items if rid in recheck]
    if not wanted:
        return set()
    payloads: dict[str, str | None] = {}
    for chunk in chunked(sorted({ev for _, ev in wanted}), IN_CHUNK):
        payloads.update(IntakeRecord.select(IntakeRecord.event_id, IntakeRecord.payload).where(
            IntakeRecord.event_id.in_(list(chunk))).tuples())
    rules = {rid: _rules(new[current[rid][0]]) for rid in recheck}
    failing = set()
    for rid, ev in wanted:
        text = payloads.get(ev)
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        # An event the log no longer holds cannot be checked: the fulfillment stays, as the
        # import itself keeps it.
        if isinstance(payload, dict) and not all_match(rules[rid], payload):
            failing.add((rid, ev))
    return failing
