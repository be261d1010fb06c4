"""What an Open edX Credentials database holds about badges, read in one snapshot.

The schema is Credentials' own (credentials/apps/badges/models.py and its two migrations):
multi-table inheritance puts every template in `badges_badgetemplate` with a child row in
`badges_credlybadgetemplate` (organization) or `badges_accrediblegroup` (API configuration; its
id IS the Accredible group id), and every awarded badge in `credentials_usercredential` with a
child row in `badges_credlybadge` or `badges_accrediblebadge` (issuing state, external id),
pointing at its template through Django's content types.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from badgetui.services.common import ServiceError
from badgetui.services.migrate.source import ACCREDIBLE_TABLES, Source, as_time, as_uuid

TEMPLATE_MODELS = {"credlybadgetemplate": "credly", "accrediblegroup": "accredible"}


@dataclass(slots=True)
class CredlyOrg:
    id: int
    uuid: str
    name: str
    api_key: str


@dataclass(slots=True)
class AccredibleConfig:
    id: int
    name: str
    api_key: str


@dataclass(slots=True)
class SourceTemplate:
    id: int
    #: "credly", "accredible", or both when an Accredible group took a Credly template's id.
    kinds: tuple[str, ...]
    uuid: str
    name: str
    description: str
    icon: str
    state: str
    is_active: bool
    origin: str
    site_id: int | None
    created: datetime | None
    modified: datetime | None
    org_id: int | None
    config_id: int | None


@dataclass(slots=True)
class SourceRule:
    path: str
    operator: str
    value: str


@dataclass(slots=True)
class SourceRequirement:
    id: int
    template_id: int
    event_type: str
    description: str
    blend: str | None
    rules: list[SourceRule] = field(default_factory=list)


@dataclass(slots=True)
class SourcePenalty:
    id: int
    template_id: int
    event_type: str
    requirement_ids: list[int] = field(default_factory=list)
    rules: list[SourceRule] = field(default_factory=list)


@dataclass(slots=True)
class SourceUser:
    username: str
    email: str
    name: str
    lms_id: int | None
    is_active: bool


@dataclass(slots=True)
class SourceProgress:
    id: int
    username: str
    template_id: int | None
    #: (fulfillment id, requirement id or None when the requirement was deleted)
    fulfillments: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass(slots=True)
class SourceBadge:
    id: int
    provider: str
    template_id: int
    username: str
    status: str
    uuid: str
    #: None: no badges_credlybadge / badges_accrediblebadge row (a bare UserCredential).
    state: str | None
    external_id: str | None
    created: datetime | None
    modified: datetime | None


@dataclass(slots=True)
class Snapshot:
    site_id: int | None
    sites: dict[int, str]
    orgs: list[CredlyOrg]
    configs: list[AccredibleConfig]
    templates: list[SourceTemplate]
    requirements: list[SourceRequirement]
    penalties: list[SourcePenalty]
    users: dict[str, SourceUser]
    progress: list[SourceProgress]
    badges: list[SourceBadge]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _sites(source: Source) -> dict[int, str]:
    if "django_site" not in source.tables():
        return {}
    return {int(r["id"]): _text(r["domain"]) for r in source.rows(
        "SELECT id, domain FROM django_site ORDER BY id")}


def choose_site(source: Source, site: int | None) -> tuple[int | None, dict[int, str]]:
    """The site whose templates are migrated: the one given, else the only one with any."""
    sites = _sites(source)
    used = sorted(int(r["site_id"]) for r in source.rows(
        "SELECT DISTINCT site_id FROM badges_badgetemplate WHERE site_id IS NOT NULL"))
    if site is not None:
        if site not in used and site not in sites:
            known = ", ".join(f"{s} ({sites.get(s, '?')})" for s in used) or "none"
            raise ServiceError(f"site {site} has no badge templates (sites with templates: "
                               f"{known})")
        return site, sites
    if len(used) > 1:
        known = ", ".join(f"{s} ({sites.get(s, '?')})" for s in used)
        raise ServiceError(f"badge templates belong to several sites ({known}): choose one "
                           "with --site ID")
    return (used[0] if used else None), sites


def read_snapshot(source: Source, site: int | None) -> Snapshot:
    site_id, sites = choose_site(source, site)
    tables = source.tables()
    accredible = all(t in tables for t in ACCREDIBLE_TABLES)
    where_site = "" if site_id is None else f" WHERE t.site_id = {int(site_id)}"

    credly_children = {int(r["badgetemplate_ptr_id"]): _int(r["organization_id"])
                       for r in source.rows("SELECT badgetemplate_ptr_id, organization_id "
                                            "FROM badges_credlybadgetemplate")}
    group_children: dict[int, int | None] = {}
    if accredible:
        group_children = {int(r["badgetemplate_ptr_id"]): _int(r["api_config_id"])
                          for r in source.rows("SELECT badgetemplate_ptr_id, api_config_id "
                                               "FROM badges_accrediblegroup")}
    templates = []
    for r in source.rows("SELECT t.id, t.uuid, t.name, t.description, t.icon, t.origin, "
                         "t.state, t.is_active, t.site_id, t.created, t.modified "
                         f"FROM badges_badgetemplate t{where_site} ORDER BY t.id"):
        tid = int(r["id"])
        kinds = tuple(k for k, children in (("credly", credly_children),
                                            ("accredible", group_children))
                      if tid in children)
        templates.append(SourceTemplate(
            id=tid, kinds=kinds, uuid=as_uuid(r["uuid"]), name=_text(r["name"]),
            description=_text(r["description"]), icon=_text(r["icon"]),
            state=_text(r["state"]), is_active=bool(r["is_active"]),
            origin=_text(r["origin"]), site_id=_int(r["site_id"]),
            created=as_time(r["created"]), modified=as_time(r["modified"]),
            org_id=credly_children.get(tid), config_id=group_children.get(tid)))
    ids = {t.id for t in templates}

    orgs = [CredlyOrg(int(r["id"]), as_uuid(r["uuid"]), _text(r["name"]), _text(r["api_key"]))
            for r in source.rows("SELECT id, uuid, name, api_key FROM badges_credlyorganization "
                                 "ORDER BY id")]
    configs = []
    if accredible:
        configs = [AccredibleConfig(int(r["id"]), _text(r["name"]), _text(r["api_key"]))
                   for r in source.rows("SELECT id, name, api_key FROM "
                                        "badges_accredibleapiconfig ORDER BY id")]
    if site_id is not None:  # accounts serving only other sites stay behind
        others = {t.org_id for t in templates} | {t.config_id for t in templates}
        owned = {int(r["organization_id"]) for r in source.rows(
            "SELECT DISTINCT organization_id FROM badges_credlybadgetemplate")}
        orgs = [o for o in orgs if o.id in others or o.id not in owned]
        if accredible:
            used = {int(r["api_config_id"]) for r in source.rows(
                "SELECT DISTINCT api_config_id FROM badges_accrediblegroup")}
            configs = [c for c in configs if c.id in others or c.id not in used]

    requirements = [
        SourceRequirement(int(r["id"]), int(r["template_id"]), _text(r["event_type"]),
                          _text(r["description"]),
                          None if r["blend"] is None else _text(r["blend"]))
        for r in source.rows("SELECT id, template_id, event_type, description, blend FROM "
                             "badges_badgerequirement ORDER BY id")
        if int(r["template_id"]) in ids]
    by_req = {q.id: q for q in requirements}
    for r in source.rows("SELECT requirement_id, data_path, operator, value FROM "
                         "badges_datarule ORDER BY id"):
        owner = by_req.get(int(r["requirement_id"]))
        if owner is not None:
            owner.rules.append(SourceRule(_text(r["data_path"]), _text(r["operator"]),
                                          _text(r["value"])))
    penalties = [SourcePenalty(int(r["id"]), int(r["template_id"]), _text(r["event_type"]))
                 for r in source.rows("SELECT id, template_id, event_type FROM "
                                      "badges_badgepenalty ORDER BY id")
                 if int(r["template_id"]) in ids]
    by_pen = {p.id: p for p in penalties}
    for r in source.rows("SELECT badgepenalty_id, badgerequirement_id FROM "
                         "badges_badgepenalty_requirements ORDER BY id"):
        owner = by_pen.get(int(r["badgepenalty_id"]))
        if owner is not None:
            owner.requirement_ids.append(int(r["badgerequirement_id"]))
    for r in source.rows("SELECT penalty_id, data_path, operator, value FROM "
                         "badges_penaltydatarule ORDER BY id"):
        owner = by_pen.get(int(r["penalty_id"]))
        if owner is not None:
            owner.rules.append(SourceRule(_text(r["data_path"]), _text(r["operator"]),
                                          _text(r["value"])))

    progress: dict[int, SourceProgress] = {}
    for r in source.rows("SELECT id, username, template_id FROM badges_badgeprogress "
                         "ORDER BY id"):
        template_id = _int(r["template_id"])
        if template_id is not None and template_id not in ids:
            continue
        progress[int(r["id"])] = SourceProgress(int(r["id"]), _text(r["username"]), template_id)
    for r in source.rows("SELECT id, progress_id, requirement_id FROM badges_fulfillment "
                         "ORDER BY id"):
        owner = progress.get(int(r["progress_id"]))
        if owner is not None:
            owner.fulfillments.append((int(r["id"]), _int(r["requirement_id"])))

    badges = _badges(source, ids, accredible)
    users = _users(source)
    return Snapshot(site_id, sites, orgs, configs, templates, requirements, penalties, users,
                    list(progress.values()), badges)


def _badges(source: Source, ids: set[int], accredible: bool) -> list[SourceBadge]:
    types = {int(r["id"]): TEMPLATE_MODELS[_text(r["model"])] for r in source.rows(
        "SELECT id, model FROM django_content_type WHERE app_label = 'badges' AND model IN "
        "('credlybadgetemplate', 'accrediblegroup')")}
    if not types:
        return []
    children: dict[str, dict[int, tuple[str, str | None]]] = defaultdict(dict)
    for r in source.rows("SELECT usercredential_ptr_id, state, external_uuid FROM "
                         "badges_credlybadge"):
        external = as_uuid(r["external_uuid"]) if r["external_uuid"] else None
        children["credly"][int(r["usercredential_ptr_id"])] = (_text(r["state"]), external)
    if accredible:
        for r in source.rows("SELECT usercredential_ptr_id, state, external_id FROM "
                             "badges_accrediblebadge"):
            external = None if r["external_id"] is None else str(int(r["external_id"]))
            children["accredible"][int(r["usercredential_ptr_id"])] = (_text(r["state"]),
                                                                        external)
    in_types = ", ".join(str(t) for t in sorted(types))
    badges = []
    for r in source.rows("SELECT id, credential_content_type_id, credential_id, username, "
                         "status, uuid, created, modified FROM credentials_usercredential "
                         f"WHERE credential_content_type_id IN ({in_types}) ORDER BY id"):
        template_id = int(r["credential_id"])
        if template_id not in ids:
            continue
        provider = types[int(r["credential_content_type_id"])]
        state, external = children[provider].get(int(r["id"]), (None, None))
        badges.append(SourceBadge(
            id=int(r["id"]), provider=provider, template_id=template_id,
            username=_text(r["username"]), status=_text(r["status"]), uuid=as_uuid(r["uuid"]),
            state=state, external_id=external, created=as_time(r["created"]),
            modified=as_time(r["modified"])))
    return badges


def _users(source: Source) -> dict[str, SourceUser]:
    """The learners the badge tables name (core_user may hold millions of others)."""
    rows = source.rows(
        "SELECT username, email, first_name, last_name, full_name, lms_user_id, is_active "
        "FROM core_user WHERE username IN (SELECT username FROM badges_badgeprogress) "
        "OR username IN (SELECT username FROM credentials_usercredential)")
    users = {}
    for r in rows:
        name = _text(r["full_name"]).strip() or " ".join(
            p for p in (_text(r["first_name"]).strip(), _text(r["last_name"]).strip()) if p)
        users[_text(r["username"])] = SourceUser(
            _text(r["username"]), _text(r["email"]), name, _int(r["lms_user_id"]),
            bool(r["is_active"]))
    return users
