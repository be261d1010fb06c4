"""In-memory Credly: organizations, their templates and keys, issued badges and events.

Operations raise `ApiError` with Credly's real status and body, so routes stay thin and the
in-process control methods share the same rules.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from badgetui.sandbox.clock import SandboxClock, iso_ms, parse_instant
from badgetui.sandbox.credly_oauth import CredlyOAuthState
from badgetui.sandbox.errors import (
    credly_error,
    credly_not_found,
    credly_unauthorized,
    credly_validation,
)
from badgetui.sandbox.ids import IdSource

KEY_LIFETIME = timedelta(days=180)
TEMPLATE_STATES = ("draft", "active", "archived")
TEMPLATE_ACTIONS = ("create", "change", "archive", "delete")
#: What the control hook may move a badge to: the earner's answer, or the issuer revoking or
#: replacing it in Credly's dashboard (Credly's docs name `replaced` as a badge state).
CONTROL_BADGE_STATES = ("accepted", "rejected", "revoked", "replaced")
REQUIRED_ISSUE_FIELDS = ("recipient_email", "issued_to_first_name", "issued_to_last_name",
                         "badge_template_id", "issued_at")
WEB = "https://sandbox.credly.com"
API = "https://sandbox-api.credly.com/v1"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "badge"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass
class CredlyKey:
    """An organization authorization token; dead 180 days after `created_at`, or from
    `dead_at` once rotated (at once, or after the `credly_rotate_grace_s` option)."""

    id: str
    token: str
    created_at: datetime
    description: str = "badgetui sandbox"
    dead_at: datetime | None = None
    #: A seeded expiry other than created + 180 days (tokens made before the time box).
    expires: datetime | None = None

    @property
    def expires_at(self) -> datetime:
        return self.expires or self.created_at + KEY_LIFETIME

    def alive(self, now: datetime) -> bool:
        return now < self.expires_at and (self.dead_at is None or now < self.dead_at)


@dataclass
class CredlyTemplate:
    """A badge template; `badges_count` follows the issues made from it."""

    id: str
    name: str
    state: str
    description: str
    image_url: str
    allow_duplicate_badges: bool
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    badges_count: int = 0


@dataclass
class CredlyOrganization:
    """An issuing organization with its templates (in seed order) and keys."""

    id: str
    name: str
    webhook_url: str | None
    keys: list[CredlyKey]
    templates: dict[str, CredlyTemplate] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def vanity(self) -> str:
        return _slug(self.name)


@dataclass
class CredlyBadge:
    """An issued badge, kept whatever its state so tests can see what reached Credly."""

    id: str
    organization_id: str
    template_id: str
    recipient_email: str
    first_name: str
    last_name: str
    issued_at: datetime
    created_at: datetime
    state: str = "pending"
    middle_name: str | None = None
    issuer_earner_id: str | None = None
    locale: str = "en"
    expires_at: datetime | None = None
    revocation_reason: str | None = None
    evidence: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None
    state_updated_at: datetime | None = None


@dataclass
class CredlyEvent:
    """A recorded event with a snapshot of its resource as it was when it happened."""

    id: str
    organization_id: str
    event_type: str
    occurred_at: datetime
    resource_key: str
    resource: dict[str, Any]

    def notification(self) -> dict[str, Any]:
        """The small webhook body Credly POSTs (no embedded resource)."""
        return {"id": self.id, "organization_id": self.organization_id,
                "event_type": self.event_type, "occurred_at": iso_ms(self.occurred_at)}

    def to_json(self) -> dict[str, Any]:
        return {**self.notification(), self.resource_key: self.resource}


def mask_token(token: str) -> str:
    """A key as the test document shows it: its last 4 characters."""
    return "…" + token[-4:]


def parse_credly_token(header: str | None) -> str | None:
    """The token of `Basic base64(token[:|]...)` or `Bearer token`; None when unreadable."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    token = re.split(r"[:|]", decoded, maxsplit=1)[0]
    return token or None


class CredlyState:
    """Every Credly organization, badge and event the emulator knows."""

    def __init__(self, section: dict[str, Any], clock: SandboxClock, ids: IdSource,
                 options: dict[str, Any]) -> None:
        self.clock = clock
        self.ids = ids
        self.options = options
        self.organizations: dict[str, CredlyOrganization] = {}
        self.badges: dict[str, CredlyBadge] = {}
        #: Badges deleted in the dashboard: gone from the API (404), kept for the test document.
        self.deleted_badges: dict[str, CredlyBadge] = {}
        self.events: dict[str, CredlyEvent] = {}
        self.listener: Callable[[CredlyEvent], None] | None = None
        #: OAuth applications and the access tokens they were given (`credly_oauth`).
        self.oauth = CredlyOAuthState(clock, ids, options)
        now = clock.now()
        for raw in section.get("organizations", []):
            self._load_organization(raw, now)

    def _load_organization(self, raw: dict[str, Any], now: datetime) -> None:
        created = raw.get("key_created_at")
        expires = raw.get("key_expires_at")
        key = CredlyKey(id=self.ids.uuid(), token=str(raw["api_key"]),
                        created_at=parse_instant(created) if created else now,
                        expires=parse_instant(expires) if expires else None)
        org = CredlyOrganization(id=str(raw["id"]), name=str(raw.get("name") or raw["id"]),
                                 webhook_url=raw.get("webhook_url"), keys=[key],
                                 created_at=now)
        for tpl in raw.get("badge_templates", []):
            template = self._new_template(tpl, now)
            org.templates[template.id] = template
        self.organizations[org.id] = org
        self.oauth.load(org.id, list(raw.get("oauth_applications") or []))

    def _new_template(self, raw: dict[str, Any], now: datetime) -> CredlyTemplate:
        state = str(raw.get("state") or "active")
        if state not in TEMPLATE_STATES:
            raise ValueError(f"unknown template state {state!r}")
        if _blank(raw.get("name")):
            raise ValueError("a template needs a name")
        return CredlyTemplate(
            id=str(raw.get("id") or self.ids.uuid()), name=str(raw["name"]), state=state,
            description=str(raw.get("description") or ""),
            image_url=str(raw.get("image_url") or ""),
            allow_duplicate_badges=bool(raw.get("allow_duplicate_badges", False)),
            created_at=now, updated_at=now, state_updated_at=now)

    # --- authentication -------------------------------------------------------------------

    def authenticate(self, header: str | None, org_id: str) -> CredlyOrganization:
        """Resolve the organization of the path for the token of the header, or refuse."""
        token = parse_credly_token(header)
        now = self.clock.now()
        owners = {org.id for org in self.organizations.values() for key in org.keys
                  if token is not None and key.token == token and key.alive(now)}
        bearer_org = (self.oauth.organization_of(token)
                      if header and header.strip().lower().startswith("bearer ") else None)
        if bearer_org is not None:
            owners.add(bearer_org)
        if not owners:
            raise credly_unauthorized()
        org = self.organizations.get(org_id)
        if org is None:
            raise credly_not_found()
        if org.id not in owners:
            raise credly_unauthorized()
        return org

    def rotate_key(self, org: CredlyOrganization, header: str | None) -> CredlyKey:
        """Replace the organization token of `header` by a new one (created now, so it lives
        180 days); the old one dies at once, or after `credly_rotate_grace_s` seconds. A
        request made with an OAuth access token has no token to rotate: 422."""
        token = parse_credly_token(header)
        now = self.clock.now()
        old = next((k for k in org.keys if k.token == token and k.alive(now)), None)
        if old is None:
            raise credly_validation("Authorization token to rotate not found")
        new = CredlyKey(id=self.ids.uuid(), token=f"rot-{self.ids.hex(32)}", created_at=now,
                        description=old.description)
        grace = float(self.options.get("credly_rotate_grace_s") or 0)
        old.dead_at = now + timedelta(seconds=grace)
        org.keys.insert(0, new)
        return new

    def live_keys(self, org: CredlyOrganization) -> list[CredlyKey]:
        now = self.clock.now()
        return [k for k in org.keys if k.alive(now)]

    # --- JSON views -----------------------------------------------------------------------

    def owner_json(self, org: CredlyOrganization) -> dict[str, Any]:
        return {"type": "Organization", "id": org.id, "name": org.name,
                "url": f"{API}/organizations/{org.id}"}

    def organization_json(self, org: CredlyOrganization) -> dict[str, Any]:
        return {"id": org.id, "name": org.name, "website_url": f"https://{org.vanity}.example",
                "webhook_url": org.webhook_url, "contact_email": f"badges@{org.vanity}.example",
                "vanity_url": f"{WEB}/org/{org.vanity}", "verified": True,
                "photo_url": f"https://images.credly.example/org/{org.id}.png",
                "created_at": iso_ms(org.created_at), "updated_at": iso_ms(org.created_at)}

    def template_json(self, org: CredlyOrganization, tpl: CredlyTemplate) -> dict[str, Any]:
        """The template as Credly answers it; memoized, since list pages render every template
        of the organization before filtering (10,000 templates × 200 pages in the sync bench)."""
        signature = (org.id, org.name, org.vanity, tpl.name, tpl.description, tpl.state,
                     tpl.image_url, tpl.badges_count, tpl.allow_duplicate_badges,
                     tpl.state_updated_at, tpl.created_at, tpl.updated_at)
        cache: dict[str, tuple[Any, dict[str, Any]]] = self.__dict__.setdefault(
            "_template_json_cache", {})
        hit = cache.get(tpl.id)
        if hit is not None and hit[0] == signature:
            return dict(hit[1])
        body = self._render_template(org, tpl)
        cache[tpl.id] = (signature, body)
        return dict(body)

    def _render_template(self, org: CredlyOrganization, tpl: CredlyTemplate) -> dict[str, Any]:
        slug = _slug(tpl.name)
        return {
            "id": tpl.id, "name": tpl.name, "description": tpl.description, "state": tpl.state,
            "public": True, "visibility": "public",
            "allow_duplicate_badges": tpl.allow_duplicate_badges,
            "image": {"id": tpl.id, "url": tpl.image_url}, "image_url": tpl.image_url,
            "url": f"{WEB}/org/{org.vanity}/badge/{slug}", "vanity_slug": slug,
            "badges_count": tpl.badges_count, "level": None, "time_to_earn": None,
            "cost": None, "type_category": None, "skills": [], "reporting_tags": [],
            "owner": self.owner_json(org), "state_updated_at": iso_ms(tpl.state_updated_at),
            "created_at": iso_ms(tpl.created_at), "updated_at": iso_ms(tpl.updated_at),
        }

    def badge_json(self, badge: CredlyBadge) -> dict[str, Any]:
        org = self.organizations.get(badge.organization_id)
        tpl = org.templates.get(badge.template_id) if org else None
        template = (self.template_json(org, tpl) if org and tpl
                    else {"id": badge.template_id, "state": "deleted"})
        names = [badge.first_name, badge.middle_name, badge.last_name]
        link = f"{WEB}/badges/{badge.id}"
        body = {
            "id": badge.id, "state": badge.state, "badge_template": template, "user": None,
            "recipient_email": badge.recipient_email,
            "issued_to": " ".join(n for n in names if n),
            "issued_to_first_name": badge.first_name, "issued_to_middle_name": badge.middle_name,
            "issued_to_last_name": badge.last_name, "issuer_earner_id": badge.issuer_earner_id,
            "locale": badge.locale, "public": False, "revocation_reason": badge.revocation_reason,
            "replacement_badge_id": None, "replaces_badge_id": None,
            "issued_at": iso_ms(badge.issued_at),
            "issued_at_date": badge.issued_at.date().isoformat(),
            "expires_at": iso_ms(badge.expires_at),
            "expires_at_date": badge.expires_at.date().isoformat() if badge.expires_at else None,
            "state_updated_at": iso_ms(badge.state_updated_at or badge.created_at),
            "created_at": iso_ms(badge.created_at),
            "updated_at": iso_ms(badge.updated_at or badge.created_at),
            "image_url": template.get("image_url"), "evidence": badge.evidence,
            **badge.extra,
        }
        if badge.state == "pending":
            body["accept_badge_url"] = f"{link}/accept"
        else:
            body["badge_url"] = link
        return body

    def key_json(self, org: CredlyOrganization, key: CredlyKey) -> dict[str, Any]:
        return {"id": key.id, "token": key.token, "owner_id": org.id,
                "description": key.description, "read_enabled": True, "write_enabled": True,
                "delete_enabled": True, "created_at": iso_ms(key.created_at),
                "expires_at": iso_ms(key.expires_at), "owner": self.owner_json(org)}

    # --- reads ----------------------------------------------------------------------------

    def template(self, org: CredlyOrganization, template_id: str) -> CredlyTemplate:
        tpl = org.templates.get(template_id)
        if tpl is None:
            raise credly_not_found()
        return tpl

    def badge(self, org: CredlyOrganization, badge_id: str) -> CredlyBadge:
        badge = self.badges.get(badge_id)
        if badge is None or badge.organization_id != org.id:
            raise credly_not_found()
        return badge

    def event(self, org: CredlyOrganization, event_id: str) -> CredlyEvent:
        event = self.events.get(event_id)
        if event is None or event.organization_id != org.id:
            raise credly_not_found()
        return event

    def org_badges(self, org: CredlyOrganization) -> list[dict[str, Any]]:
        return [self.badge_json(b) for b in self.badges.values() if b.organization_id == org.id]

    # --- writes ---------------------------------------------------------------------------

    def issue(self, org: CredlyOrganization, body: Any) -> CredlyBadge:
        """Create a pending badge after Credly's checks; records `badge.created`."""
        if not isinstance(body, dict):
            raise credly_error(400, "Request body must be a JSON object")
        for name in REQUIRED_ISSUE_FIELDS:
            if _blank(body.get(name)):
                raise credly_validation(f"{name} can't be blank")
        tpl = self.template(org, str(body["badge_template_id"]))
        if tpl.state != "active":
            raise credly_validation("Badge template is not active")
        try:
            issued_at = parse_instant(str(body["issued_at"]))
        except ValueError:
            raise credly_validation("issued_at is invalid") from None
        expires_at = None
        if body.get("expires_at") not in (None, False, ""):
            try:
                expires_at = parse_instant(str(body["expires_at"]))
            except ValueError:
                raise credly_validation("expires_at is invalid") from None
        email = str(body["recipient_email"]).strip()
        earner = body.get("issuer_earner_id")
        earner = None if _blank(earner) else str(earner)
        if not tpl.allow_duplicate_badges and self._duplicate(org, tpl, email, earner):
            raise credly_validation("User already has this badge")
        now = self.clock.now()
        extra = {k: body.get(k) for k in ("country_name", "state_or_province")}
        extra["suppress_badge_notification_email"] = bool(
            body.get("suppress_badge_notification_email", False))
        badge = CredlyBadge(
            id=self.ids.uuid(), organization_id=org.id, template_id=tpl.id,
            recipient_email=email, first_name=str(body["issued_to_first_name"]),
            last_name=str(body["issued_to_last_name"]),
            middle_name=body.get("issued_to_middle_name"), issuer_earner_id=earner,
            locale=str(body.get("locale") or "en"), issued_at=issued_at, expires_at=expires_at,
            evidence=list(body.get("evidence") or []), extra=extra, created_at=now,
            updated_at=now, state_updated_at=now)
        self.badges[badge.id] = badge
        tpl.badges_count += 1
        self.record_badge_event(badge, "badge.created")
        return badge

    def _duplicate(self, org: CredlyOrganization, tpl: CredlyTemplate, email: str,
                   earner: str | None) -> bool:
        revoked_count = bool(self.options.get("credly_revoked_blocks_reissue"))
        for badge in self.badges.values():
            if badge.organization_id != org.id or badge.template_id != tpl.id:
                continue
            if badge.state == "revoked" and not revoked_count:
                continue
            if badge.recipient_email.lower() == email.lower():
                return True
            if earner is not None and badge.issuer_earner_id == earner:
                return True
        return False

    def revoke(self, org: CredlyOrganization, badge_id: str, body: Any) -> CredlyBadge:
        """Revoke with a reason; a second revoke is a 422 like Credly's."""
        badge = self.badge(org, badge_id)
        if badge.state == "revoked":
            raise credly_validation("Badge has already been revoked")
        reason = body.get("reason") if isinstance(body, dict) else None
        if _blank(reason):
            raise credly_validation("reason can't be blank")
        self._move(badge, "revoked")
        badge.revocation_reason = str(reason)
        badge.extra["suppress_revoke_notification_email"] = bool(
            body.get("suppress_revoke_notification_email", False))
        self.record_badge_event(badge, "badge.state.changed")
        return badge

    def set_badge_state(self, badge_id: str, state: str, reason: str | None = None) -> CredlyBadge:
        """A change made outside badgetui (control hook): the earner accepts or rejects, or the
        issuer revokes (with a reason, as the API's revoke needs) or replaces it in the
        dashboard. Records the state change event a webhook receiver is told about."""
        if state not in CONTROL_BADGE_STATES:
            raise ValueError(f"state must be one of {CONTROL_BADGE_STATES}")
        badge = self.badges.get(badge_id)
        if badge is None:
            raise LookupError(f"unknown badge {badge_id}")
        if badge.state in ("revoked", "replaced"):
            raise ValueError(f"a {badge.state} badge cannot change state")
        if state == "revoked" and _blank(reason):
            raise ValueError("revoking needs a reason")
        self._move(badge, state)
        if state == "revoked":
            badge.revocation_reason = str(reason)
        self.record_badge_event(badge, "badge.state.changed")
        return badge

    def delete_badge(self, badge_id: str) -> CredlyEvent:
        """A badge deleted in the dashboard (control hook): the API answers 404 for it from now
        on, so `badge.deleted` carries the badge as it was (the only place it can be read)."""
        badge = self.badges.get(badge_id)
        if badge is None:
            raise LookupError(f"unknown badge {badge_id}")
        event = self.record_badge_event(badge, "badge.deleted")
        del self.badges[badge_id]
        self.deleted_badges[badge_id] = badge
        org = self.organizations.get(badge.organization_id)
        tpl = org.templates.get(badge.template_id) if org else None
        if tpl is not None and tpl.badges_count > 0:
            tpl.badges_count -= 1
        return event

    def _move(self, badge: CredlyBadge, state: str) -> None:
        now = self.clock.now()
        badge.state = state
        badge.state_updated_at = now
        badge.updated_at = now

    def record_badge_event(self, badge: CredlyBadge, event_type: str) -> CredlyEvent:
        """Record a badge.* event with the badge as it is now; a state change takes the
        spelling of the `credly_badge_state_event` option."""
        if event_type == "badge.state.changed":
            event_type = str(self.options.get("credly_badge_state_event") or event_type)
        return self._record(badge.organization_id, event_type, "badge", self.badge_json(badge))

    def _record(self, org_id: str, event_type: str, key: str,
                resource: dict[str, Any]) -> CredlyEvent:
        event = CredlyEvent(id=self.ids.uuid(), organization_id=org_id, event_type=event_type,
                            occurred_at=self.clock.now(), resource_key=key, resource=resource)
        self.events[event.id] = event
        if self.listener is not None:
            self.listener(event)
        return event

    def template_action(self, org_id: str, action: str, raw: dict[str, Any]) -> CredlyEvent:
        """A change made in Credly's dashboard (control hook): records the template event."""
        org = self.organizations.get(org_id)
        if org is None:
            raise LookupError(f"unknown organization {org_id}")
        if action not in TEMPLATE_ACTIONS:
            raise ValueError(f"action must be one of {TEMPLATE_ACTIONS}")
        if not isinstance(raw, dict):
            raise ValueError("template must be an object")
        now = self.clock.now()
        if action == "create":
            tpl = self._new_template(raw, now)
            if tpl.id in org.templates:
                raise ValueError(f"template {tpl.id} exists")
            org.templates[tpl.id] = tpl
            return self._record(org.id, "badge_template.created", "badge_template",
                                self.template_json(org, tpl))
        tpl = org.templates.get(str(raw.get("id")))
        if tpl is None:
            raise LookupError(f"unknown template {raw.get('id')}")
        if action == "delete":
            snapshot = self.template_json(org, tpl)
            del org.templates[tpl.id]
            return self._record(org.id, "badge_template.deleted", "badge_template", snapshot)
        changes = {"state": "archived"} if action == "archive" else raw
        self._change_template(tpl, changes, now)
        return self._record(org.id, "badge_template.changed", "badge_template",
                            self.template_json(org, tpl))

    def _change_template(self, tpl: CredlyTemplate, changes: dict[str, Any],
                         now: datetime) -> None:
        state = changes.get("state", tpl.state)
        if state not in TEMPLATE_STATES:
            raise ValueError(f"unknown template state {state!r}")
        if state != tpl.state:
            tpl.state = state
            tpl.state_updated_at = now
        for name in ("name", "description", "image_url"):
            if name in changes and changes[name] is not None:
                setattr(tpl, name, str(changes[name]))
        if "allow_duplicate_badges" in changes:
            tpl.allow_duplicate_badges = bool(changes["allow_duplicate_badges"])
        tpl.updated_at = now

    def set_webhook_url(self, org_id: str, url: str | None) -> None:
        """Point an organization's webhooks somewhere (e.g. a receiver on a free port)."""
        org = self.organizations.get(org_id)
        if org is None:
            raise LookupError(f"unknown organization {org_id}")
        org.webhook_url = url

    # --- test document --------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The Credly part of GET /_sandbox/state."""
        badges = [{
            "id": b.id, "organization_id": b.organization_id, "badge_template_id": b.template_id,
            "recipient_email": b.recipient_email, "issuer_earner_id": b.issuer_earner_id,
            "issued_to_first_name": b.first_name, "issued_to_last_name": b.last_name,
            "state": b.state, "revocation_reason": b.revocation_reason,
            "issued_at": iso_ms(b.issued_at), "created_at": iso_ms(b.created_at),
            "expires_at": iso_ms(b.expires_at) if b.expires_at else None,
            "evidence": list(b.evidence),
        } for b in self.badges.values()]
        organizations = [{
            "id": org.id, "name": org.name, "webhook_url": org.webhook_url,
            "key_expires_at": iso_ms(org.keys[0].expires_at),
            "live_keys": [mask_token(k.token) for k in self.live_keys(org)],
            "badge_templates": [{"id": t.id, "name": t.name, "state": t.state}
                                for t in org.templates.values()],
        } for org in self.organizations.values()]
        events = [{"id": e.id, "organization_id": e.organization_id, "event_type": e.event_type,
                   "occurred_at": iso_ms(e.occurred_at),
                   "resource_id": e.resource.get("id")} for e in self.events.values()]
        return {"organizations": organizations, "badges": badges, "events": events,
                "oauth": self.oauth.document(),
                "deleted_badges": sorted(self.deleted_badges)}
