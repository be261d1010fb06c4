"""From a Credentials snapshot to what badgetui will hold, with every defect found on the way.

Pure translation (no database): accounts, templates with their configuration as code, learners,
progress with fulfillments, badges with the delivery each needs, and the findings, which say
what Credentials' known defects left behind and what the operator's flags chose for them.
"""

from __future__ import annotations

import string
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from badgetui.domain.config import PenaltyConfig, RequirementConfig, RuleConfig, TemplateConfig
from badgetui.domain.secrets import mask
from badgetui.services.migrate.snapshot import (
    Snapshot,
    SourceBadge,
    SourcePenalty,
    SourceRequirement,
    SourceRule,
    SourceTemplate,
)

LETTERS = string.ascii_uppercase
#: Credentials' issuing states in which the provider holds the badge (models.py ISSUING_STATES).
ISSUED = {"credly": {"pending", "accepted", "rejected", "revoked"},
          "accredible": {"accepted", "expired"}}
#: Provider states in which a badge is live there (a revoke must still reach it).
LIVE = {"credly": {"pending", "accepted"}, "accredible": {"accepted"}}
RULE_LESS_CHOICES = ("match-any", "inactive")
#: Examples listed per finding in text output (JSON lists them all).
EXAMPLES = 5


@dataclass(slots=True)
class MigrationOptions:
    site: int | None = None
    #: Badges Credentials awarded with groups still open: kept (never revoke silently).
    keep_early_awards: bool = True
    #: Revoked credentials Credentials made for learners who never held the badge.
    keep_unawarded_revocations: bool = False
    #: Templates whose rule-less requirements or penalties change meaning here.
    rule_less: str = "match-any"


@dataclass(slots=True)
class Finding:
    code: str
    title: str
    choice: str
    items: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "title": self.title, "count": len(self.items),
                "choice": self.choice, "items": self.items}


@dataclass(slots=True)
class AccountTarget:
    provider: str
    identifier: str
    name: str
    api_key: str

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.identifier}"

    def as_dict(self) -> dict[str, str]:
        return {"provider": self.provider, "identifier": self.identifier, "name": self.name,
                "api_key": mask(self.api_key)}


@dataclass(slots=True)
class TemplateTarget:
    source_id: int
    provider: str
    account: str  # the account's identifier
    external_id: str
    name: str
    description: str
    image_url: str
    state: str
    active: bool
    created: datetime | None
    modified: datetime | None
    config: TemplateConfig
    #: requirement key -> group letter, for progress and the early-award check
    groups: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class LearnerTarget:
    username: str
    email: str
    name: str
    lms_id: int | None
    is_active: bool


@dataclass(slots=True)
class ProgressTarget:
    username: str
    template: int  # source template id
    #: (requirement key, source fulfillment id), one per requirement
    fulfilled: list[tuple[str, int]]


@dataclass(slots=True)
class BadgeTarget:
    source: SourceBadge
    template: int
    status: str
    provider_state: str
    external_id: str | None
    last_error: str
    revoke_reason: str
    #: None, "issue" (looks the badge up first, then issues) or "revoke"
    job: str | None
    #: revoke it after import (an early award the operator chose to revoke)
    revoke_now: bool = False


@dataclass(slots=True)
class MigrationPlan:
    site_id: int | None
    site_name: str
    accounts: list[AccountTarget]
    templates: list[TemplateTarget]
    learners: list[LearnerTarget]
    progress: list[ProgressTarget]
    badges: list[BadgeTarget]
    findings: list[Finding]

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)


def _accredible_identifier(name: str, config_id: int, names: dict[str, int]) -> str:
    """Accredible configurations are named in badgetui; Credentials' names may be empty or
    shared, so those carry their Credentials id."""
    name = name.strip()
    if not name:
        return f"accredible-{config_id}"
    return name if names.get(name, 0) == 1 else f"{name} (#{config_id})"


def _rules(rules: list[SourceRule]) -> list[RuleConfig]:
    return [RuleConfig(path=r.path, op=r.operator or "eq", value=r.value) for r in rules]


class _Findings:
    """Findings in a fixed order, created when first used."""

    ORDER = ("early-award", "revoked-never-awarded", "id-collision", "rule-less", "ungrouped",
             "revoked-still-live", "not-delivered", "config-skipped", "no-user", "orphans")

    def __init__(self) -> None:
        self.by_code: dict[str, Finding] = {}

    def add(self, code: str, title: str, choice: str, item: str) -> None:
        found = self.by_code.setdefault(code, Finding(code, title, choice))
        found.items.append(item)

    def listed(self) -> list[Finding]:
        return [self.by_code[c] for c in self.ORDER if c in self.by_code]


def _template_kind(tpl: SourceTemplate, findings: _Findings) -> str | None:
    if len(tpl.kinds) == 1:
        return tpl.kinds[0]
    if not tpl.kinds:
        findings.add("orphans", "rows Credentials left without their parent or child rows",
                     "skipped", f"template {tpl.id} ({tpl.name}): neither a Credly template "
                                "nor an Accredible group")
        return None
    kind = tpl.origin if tpl.origin in tpl.kinds else "accredible"
    other = "credly" if kind == "accredible" else "accredible"
    findings.add(
        "id-collision", "Accredible group ids that collide with Credly template ids "
        "(Credentials keeps both in one id space; the group overwrote the template's row)",
        f"imported as the {kind} one; the {other} one and its badges are not: "
        "`badgetui sync` brings the template back, without requirements",
        f"template id {tpl.id} ({tpl.name}) is both a Credly template and Accredible group "
        f"{tpl.id}")
    return kind


def _groups(tpl: SourceTemplate, reqs: list[SourceRequirement], findings: _Findings
            ) -> dict[int, str] | None:
    """Requirement id -> group letter. Letters stay; other group ids get the next free
    letters; requirements without one each get their own (the documented "all required")."""
    taken = {(q.blend or "").strip().upper() for q in reqs
             if len((q.blend or "").strip()) == 1 and (q.blend or "").strip().upper() in LETTERS}
    free = [c for c in LETTERS if c not in taken]
    named: dict[str, str] = {}
    out: dict[int, str] = {}
    ungrouped = [q for q in reqs if not (q.blend or "").strip()]
    for req in reqs:
        blend = (req.blend or "").strip()
        if blend.upper() in taken and len(blend) == 1:
            out[req.id] = blend.upper()
            continue
        if blend and blend in named:
            out[req.id] = named[blend]
            continue
        if not free:
            findings.add("config-skipped", "templates whose configuration cannot be migrated",
                         "imported inactive without requirements: configure them here",
                         f"template {tpl.id} ({tpl.name}): more than 26 requirement groups")
            return None
        letter = free.pop(0)
        out[req.id] = letter
        if blend:
            named[blend] = letter
    if len(ungrouped) > 1:
        findings.add(
            "ungrouped", "templates with several requirements without a group (Credentials' "
            "code makes them one OR group; its documentation, and badgetui, require each)",
            "each gets its own group, as documented",
            f"template {tpl.id} ({tpl.name}): requirements "
            + ", ".join(str(q.id) for q in ungrouped))
    return out


def build_plan(snapshot: Snapshot, options: MigrationOptions) -> MigrationPlan:
    findings = _Findings()
    accounts: list[AccountTarget] = []
    org_ids: dict[int, str] = {}
    for org in snapshot.orgs:
        accounts.append(AccountTarget("credly", org.uuid, org.name or org.uuid, org.api_key))
        org_ids[org.id] = org.uuid
    names: dict[str, int] = defaultdict(int)
    for cfg in snapshot.configs:
        names[cfg.name.strip()] += 1
    config_ids: dict[int, str] = {}
    for cfg in snapshot.configs:
        identifier = _accredible_identifier(cfg.name, cfg.id, names)
        accounts.append(AccountTarget("accredible", identifier, identifier, cfg.api_key))
        config_ids[cfg.id] = identifier

    reqs_of: dict[int, list[SourceRequirement]] = defaultdict(list)
    for req in snapshot.requirements:
        reqs_of[req.template_id].append(req)
    pens_of = defaultdict(list)
    for pen in snapshot.penalties:
        pens_of[pen.template_id].append(pen)

    templates: list[TemplateTarget] = []
    for tpl in snapshot.templates:
        kind = _template_kind(tpl, findings)
        if kind is None:
            continue
        account = org_ids.get(tpl.org_id or -1) if kind == "credly" else config_ids.get(
            tpl.config_id or -1)
        if account is None:
            findings.add("orphans", "rows Credentials left without their parent or child rows",
                         "skipped", f"template {tpl.id} ({tpl.name}): its account is gone")
            continue
        templates.append(_template(tpl, kind, account, reqs_of[tpl.id], pens_of[tpl.id],
                                   options, findings))
    by_source = {t.source_id: t for t in templates}

    learners = _learners(snapshot, findings)
    progress = _progress(snapshot, by_source, findings)
    badges = _badges(snapshot, by_source, progress, options, findings)
    site_name = snapshot.sites.get(snapshot.site_id or -1, "")
    return MigrationPlan(snapshot.site_id, site_name, accounts, templates, learners, progress,
                         badges, findings.listed())


def _template(tpl: SourceTemplate, kind: str, account: str, reqs: list[SourceRequirement],
              pens: list[SourcePenalty], options: MigrationOptions, findings: _Findings
              ) -> TemplateTarget:
    external = tpl.uuid if kind == "credly" else str(tpl.id)
    active = tpl.is_active
    groups = _groups(tpl, reqs, findings)
    requirements: list[RequirementConfig] = []
    penalties: list[PenaltyConfig] = []
    try:
        if groups is not None:
            requirements, penalties, _ = _config(tpl, reqs, pens, groups, findings)
    except ValidationError as exc:  # e.g. an operator badgetui lacks
        reason = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        findings.add("config-skipped", "templates whose configuration cannot be migrated",
                     "imported inactive without requirements: configure them here",
                     f"template {tpl.id} ({tpl.name}): {reason}")
        groups, requirements, penalties = None, [], []
    rule_less = [f"requirement {q.id}" for q in reqs if not q.rules and groups is not None]
    rule_less += [f"penalty {p.id}" for p in pens if not p.rules and groups is not None]
    if rule_less:
        inactive = options.rule_less == "inactive"
        findings.add(
            "rule-less", "requirements and penalties without data rules: they never match in "
            "Credentials' code, and match every event of their type here (as documented)",
            "templates imported inactive (--rule-less inactive): review, then activate"
            if inactive else "imported as they are (--rule-less inactive keeps those "
            "templates inactive for review)",
            f"template {tpl.id} ({tpl.name}){' [active]' if tpl.is_active else ''}: "
            + ", ".join(rule_less))
        active = active and not inactive
    config = TemplateConfig(provider=kind, external_id=external, account=account,
                            active=active and bool(requirements), requirements=requirements,
                            penalties=penalties)
    return TemplateTarget(
        source_id=tpl.id, provider=kind, account=account, external_id=external, name=tpl.name,
        description=tpl.description, image_url=tpl.icon,
        state=tpl.state or "active", active=config.active, created=tpl.created,
        modified=tpl.modified, config=config,
        groups={r.id: r.group or "" for r in requirements})


def _config(tpl: SourceTemplate, reqs: list[SourceRequirement], pens: list[SourcePenalty],
            groups: dict[int, str], findings: _Findings
            ) -> tuple[list[RequirementConfig], list[PenaltyConfig], dict[int, str]]:
    requirements: list[RequirementConfig] = []
    penalties: list[PenaltyConfig] = []
    keys: dict[int, str] = {}
    for req in reqs:
        keys[req.id] = f"cr{req.id}"
        requirements.append(RequirementConfig(
            id=keys[req.id], event_type=req.event_type, group=groups[req.id],
            description=req.description, rules=_rules(req.rules)))
    for pen in pens:
        own = [keys[r] for r in pen.requirement_ids if r in keys]
        if len(own) != len(pen.requirement_ids):
            findings.add("orphans", "rows Credentials left without their parent or child "
                         "rows", "skipped", f"penalty {pen.id} of template {tpl.id}: links "
                         "to requirements of other templates dropped")
        if not own:
            findings.add("orphans", "rows Credentials left without their parent or child "
                         "rows", "skipped", f"penalty {pen.id} of template {tpl.id}: "
                         "resets no requirement of its template")
            continue
        penalties.append(PenaltyConfig(event_type=pen.event_type, requirements=own,
                                       description=f"Credentials penalty {pen.id}",
                                       rules=_rules(pen.rules)))
    return requirements, penalties, keys


def _learners(snapshot: Snapshot, findings: _Findings) -> list[LearnerTarget]:
    names = {p.username for p in snapshot.progress} | {b.username for b in snapshot.badges}
    out = []
    for username in sorted(n for n in names if n):
        user = snapshot.users.get(username)
        if user is None:
            findings.add("no-user", "learners without a user row in Credentials (no email: "
                         "their badges cannot be issued until an event brings it)",
                         "imported without email", username)
            out.append(LearnerTarget(username, "", "", None, True))
            continue
        out.append(LearnerTarget(username, user.email, user.name, user.lms_id, user.is_active))
    return out


def _progress(snapshot: Snapshot, templates: dict[int, TemplateTarget], findings: _Findings
              ) -> list[ProgressTarget]:
    merged: dict[tuple[str, int], dict[str, int]] = {}
    for row in snapshot.progress:
        tpl = templates.get(row.template_id) if row.template_id is not None else None
        if tpl is None or not row.username:
            findings.add("orphans", "rows Credentials left without their parent or child rows",
                         "skipped", f"progress {row.id} of {row.username or '?'}: its template "
                                    "is gone or not migrated")
            continue
        fulfilled = merged.setdefault((row.username, tpl.source_id), {})
        for fulfillment_id, requirement_id in row.fulfillments:
            key = f"cr{requirement_id}"
            if requirement_id is None or key not in tpl.groups:
                findings.add("orphans", "rows Credentials left without their parent or child "
                             "rows", "skipped", f"fulfillment {fulfillment_id} of "
                             f"{row.username}: its requirement is gone")
                continue
            fulfilled.setdefault(key, fulfillment_id)
    return [ProgressTarget(u, t, sorted(f.items(), key=lambda kv: kv[1]))
            for (u, t), f in merged.items()]


def _badges(snapshot: Snapshot, templates: dict[int, TemplateTarget],
            progress: list[ProgressTarget], options: MigrationOptions, findings: _Findings
            ) -> list[BadgeTarget]:
    done = {(p.username, p.template): {templates[p.template].groups[k] for k, _ in p.fulfilled}
            for p in progress}
    out = []
    for badge in snapshot.badges:
        tpl = templates.get(badge.template_id)
        if tpl is None or tpl.provider != badge.provider:
            findings.add("orphans", "rows Credentials left without their parent or child rows",
                         "skipped", f"badge {badge.uuid} of {badge.username}: its "
                         f"{badge.provider} template {badge.template_id} is not migrated")
            continue
        target = _badge(badge, tpl, options, findings)
        if target is None:
            continue
        if target.status == "awarded":
            groups = set(tpl.groups.values())
            have = done.get((badge.username, tpl.source_id), set())
            if not groups or not groups <= have:
                findings.add(
                    "early-award", "badges held with progress incomplete (Credentials awards "
                    "as soon as one requirement is fulfilled)",
                    "kept (--revoke-early-awards revokes them)" if options.keep_early_awards
                    else "revoked (--revoke-early-awards), at the provider too",
                    f"{badge.username} on template {tpl.source_id} ({tpl.name}): "
                    f"{len(have & groups)} of {len(groups)} groups")
                target.revoke_now = not options.keep_early_awards
        out.append(target)
    return out


def _badge(badge: SourceBadge, tpl: TemplateTarget, options: MigrationOptions,
           findings: _Findings) -> BadgeTarget | None:
    provider = badge.provider
    state = badge.state or "created"
    issued = bool(badge.external_id) and state in ISSUED[provider] | {"expired"}
    provider_state = state if state in ISSUED[provider] | {"expired", "created", "error"} \
        else "error"
    last_error = ""
    if state == "no_response":
        last_error = "no answer from the provider when Open edX Credentials issued it"
    label = f"{badge.username} on template {tpl.source_id} ({tpl.name})"
    if badge.status == "revoked":
        if not badge.external_id and state == "created":
            findings.add(
                "revoked-never-awarded", "revoked credentials of learners who never held the "
                "badge (Credentials' penalties create them on partial progress)",
                "imported as cancelled (--keep-unawarded-revocations)"
                if options.keep_unawarded_revocations else
                "not imported (--keep-unawarded-revocations keeps them)", label)
            if not options.keep_unawarded_revocations:
                return None
            return BadgeTarget(badge, tpl.source_id, "revoked", "cancelled", None, "",
                               "revoked in Open edX Credentials before it was awarded", None)
        job = None
        if badge.external_id and state in LIVE[provider]:
            findings.add("revoked-still-live", "badges revoked in Credentials but still live "
                         "at the provider (its revoke calls fail for good)",
                         "revoke queued", label)
            job = "revoke"
        elif not badge.external_id:
            job = "revoke"  # it may exist there (no answer, error): found by email and revoked
        return BadgeTarget(badge, tpl.source_id, "revoked", provider_state, badge.external_id,
                           last_error, "revoked in Open edX Credentials", job)
    if badge.status != "awarded":
        findings.add("orphans", "rows Credentials left without their parent or child rows",
                     "skipped", f"badge {badge.uuid}: unknown status {badge.status!r}")
        return None
    job = None
    if not issued:
        job = "issue"
        findings.add("not-delivered", "awarded badges Credentials never delivered (created, "
                     "no answer, error)", "queued: looked up at the provider by email and "
                     "template first, adopted if there, else issued", label)
    return BadgeTarget(badge, tpl.source_id, "awarded", provider_state, badge.external_id,
                       last_error, "", job)
