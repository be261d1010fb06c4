"""In-memory Accredible: accounts (one key each) with their groups, designs and credentials.

Group and design ids are per account and may repeat across accounts; credential ids are global
integers. Operations raise `ApiError` with Accredible's real status and body.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from badgetui.sandbox.clock import SandboxClock, iso_ms, parse_accredible_date
from badgetui.sandbox.errors import (
    ApiError,
    accredible_error,
    accredible_not_found,
    accredible_unauthorized,
)
from badgetui.sandbox.ids import IdSource
from badgetui.sandbox.ratelimit import IpThrottle

CREDENTIAL_SITE = "https://sandbox.credential.net"
#: v2 search: `from` + `size` reach the first 10 000 results only; `page.cursor` goes further.
SEARCH_WINDOW = 10_000
_TOKEN_FORMS = (
    re.compile(r'^Token\s+token="([^"]+)"$', re.IGNORECASE),
    re.compile(r"^Token\s+token=(\S+)$", re.IGNORECASE),
    re.compile(r"^Token\s+(\S+)$", re.IGNORECASE),
    re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE),
)
T = TypeVar("T")
_UPDATABLE = ("name", "description", "complete", "approve", "private", "meta_data",
              "custom_attributes", "evidence_items", "references")


def parse_accredible_token(header: str | None) -> str | None:
    """The key of `Token token=K`, `Token token="K"`, `Token K` or `Bearer K`."""
    if not header:
        return None
    for form in _TOKEN_FORMS:
        found = form.match(header.strip())
        if found:
            return found.group(1)
    return None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _by_id(items: dict[int, T], raw_id: Any) -> T | None:
    """Look up by an id that arrives as int, digit string or garbage (`designs/None`)."""
    number = _as_int(raw_id)
    return None if number is None else items.get(number)


@dataclass
class AccredibleDesign:
    """A certificate or badge design; badgetui only reads its image URL."""

    id: int
    rasterized_content_url: str
    name: str
    kind: str


@dataclass
class AccredibleGroup:
    """A group: Accredible's counterpart of a badge template."""

    id: int
    name: str
    course_name: str
    course_description: str
    primary_design_id: int | None
    badge_design_id: int | None
    certificate_design_id: int | None
    allow_duplicate_credentials: bool
    created_at: datetime
    updated_at: datetime
    #: Years after `issued_on` at which a new credential expires (openapi.json: "number of
    #: years from the issue date"; <= 0 is ignored). None: credentials do not expire.
    auto_expiry: float | None = None


@dataclass
class AccredibleAccount:
    """One issuer account, reachable with exactly one API key."""

    id: int
    name: str
    api_key: str
    groups: dict[int, AccredibleGroup] = field(default_factory=dict)
    designs: dict[int, AccredibleDesign] = field(default_factory=dict)


@dataclass
class AccredibleCredential:
    """An issued credential; `expired_on` set to a past or present date is how badgetui revokes."""

    id: int
    account_id: int
    group_id: int
    recipient: dict[str, Any]
    issued_on: date
    created_at: datetime
    updated_at: datetime
    encoded_id: str
    uuid: str
    expired_on: date | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    license_id: str | None = None


class AccredibleState:
    """Every Accredible account and every credential that reached the emulator."""

    def __init__(self, section: dict[str, Any], clock: SandboxClock, ids: IdSource,
                 options: dict[str, Any]) -> None:
        self.clock = clock
        self.ids = ids
        self.options = options
        self.accounts: dict[int, AccredibleAccount] = {}
        self.credentials: dict[int, AccredibleCredential] = {}
        self.deleted: list[dict[str, Any]] = []
        #: Credits spent on publishing since the last reset (option `accredible_credits`).
        self.credits_spent = 0
        #: Per-IP request counts (option `accredible_rate_limit`), on monotonic time.
        self.throttle = IpThrottle()
        now = clock.now()
        for index, raw in enumerate(section.get("accounts", []), start=1):
            self._load_account(raw, index, now)

    def _load_account(self, raw: dict[str, Any], index: int, now: datetime) -> None:
        account = AccredibleAccount(id=int(raw.get("id") or 1000 + index),
                                    name=str(raw.get("name") or f"Account {index}"),
                                    api_key=str(raw["api_key"]))
        for d in raw.get("designs", []):
            design = AccredibleDesign(id=int(d["id"]),
                                      rasterized_content_url=str(d["rasterized_content_url"]),
                                      name=str(d.get("name") or f"Design {d['id']}"),
                                      kind=str(d.get("kind") or "badge"))
            account.designs[design.id] = design
        for g in raw.get("groups", []):
            course_name = str(g.get("course_name") or g.get("name") or g["id"])
            group = AccredibleGroup(
                id=int(g["id"]), name=str(g.get("name") or course_name), course_name=course_name,
                course_description=str(g.get("course_description") or ""),
                primary_design_id=_as_int(g.get("primary_design_id")),
                badge_design_id=_as_int(g.get("badge_design_id")),
                certificate_design_id=_as_int(g.get("certificate_design_id")),
                allow_duplicate_credentials=bool(g.get("allow_duplicate_credentials", False)),
                created_at=now, updated_at=now, auto_expiry=_years(g.get("auto_expiry")))
            account.groups[group.id] = group
        self.accounts[account.id] = account

    # --- authentication and lookups -------------------------------------------------------

    def authenticate(self, header: str | None) -> AccredibleAccount:
        token = parse_accredible_token(header)
        for account in self.accounts.values():
            if token is not None and account.api_key == token:
                return account
        raise accredible_unauthorized()

    def group(self, account: AccredibleAccount, group_id: Any) -> AccredibleGroup:
        group = _by_id(account.groups, group_id)
        if group is None:
            raise accredible_not_found()
        return group

    def design(self, account: AccredibleAccount, design_id: Any) -> AccredibleDesign:
        design = _by_id(account.designs, design_id)
        if design is None:
            raise accredible_not_found()
        return design

    def credential(self, account: AccredibleAccount, credential_id: Any) -> AccredibleCredential:
        cred = _by_id(self.credentials, credential_id)
        if cred is None or cred.account_id != account.id:
            raise accredible_not_found()
        return cred

    # --- JSON views -----------------------------------------------------------------------

    def issuer_json(self, account: AccredibleAccount) -> dict[str, Any]:
        slug = re.sub(r"[^a-z0-9]+", "-", account.name.lower()).strip("-")
        return {"id": account.id, "name": account.name, "email": f"issuer@{slug}.example",
                "url": f"https://{slug}.example", "description": None, "logo_url": None}

    def group_json(self, group: AccredibleGroup) -> dict[str, Any]:
        return {
            "id": group.id, "name": group.name, "course_name": group.course_name,
            "course_description": group.course_description, "course_link": None,
            "language": "en", "design_id": group.certificate_design_id,
            "certificate_design_id": group.certificate_design_id,
            "badge_design_id": group.badge_design_id,
            "primary_design_id": group.primary_design_id, "department_id": None,
            "allow_duplicate_credentials": group.allow_duplicate_credentials,
            "auto_expiry": group.auto_expiry, "meta_data": {},
            "created_at": iso_ms(group.created_at), "updated_at": iso_ms(group.updated_at),
        }

    def design_json(self, design: AccredibleDesign) -> dict[str, Any]:
        return {"id": design.id, "name": design.name, "kind": design.kind,
                "rasterized_content_url": design.rasterized_content_url,
                "orientation": "landscape", "size": "a4", "department_id": None,
                "created_at": None, "updated_at": None}

    def credential_json(self, cred: AccredibleCredential) -> dict[str, Any]:
        account = self.accounts[cred.account_id]
        group = account.groups.get(cred.group_id)
        image = self._image(account, group)
        fields = cred.fields
        return {
            "id": cred.id, "uuid": cred.uuid,
            "name": fields.get("name") or (group.course_name if group else None),
            "description": fields.get("description")
            or (group.course_description if group else None),
            "issued_on": cred.issued_on.isoformat(),
            "expired_on": cred.expired_on.isoformat() if cred.expired_on else None,
            "complete": fields.get("complete", True), "approve": fields.get("approve", True),
            "private": fields.get("private", False),
            "url": f"{CREDENTIAL_SITE}/{cred.encoded_id}", "encoded_id": cred.encoded_id,
            "group_id": cred.group_id, "group_name": group.name if group else None,
            "recipient": {"name": cred.recipient.get("name"),
                          "email": cred.recipient.get("email"),
                          "id": cred.recipient.get("id"),
                          "meta_data": cred.recipient.get("meta_data") or {}},
            "issuer": {"id": account.id, "name": account.name,
                       "url": self.issuer_json(account)["url"]},
            "badge": {"image": {"preview": image}}, "certificate": {"image": {"preview": image}},
            "meta_data": fields.get("meta_data") or {},
            "custom_attributes": fields.get("custom_attributes") or {},
            "evidence_items": fields.get("evidence_items") or [],
            "references": fields.get("references") or [],
            "license_id": cred.license_id,
            "created_at": iso_ms(cred.created_at), "updated_at": iso_ms(cred.updated_at),
        }

    def _image(self, account: AccredibleAccount, group: AccredibleGroup | None) -> str | None:
        if group is None:
            return None
        for design_id in (group.primary_design_id, group.badge_design_id,
                          group.certificate_design_id):
            if design_id is not None and design_id in account.designs:
                return account.designs[design_id].rasterized_content_url
        return None

    def flat_json(self, cred: AccredibleCredential) -> dict[str, Any]:
        """A v2 search row: flat recipient fields, a small group object."""
        group = self.accounts[cred.account_id].groups.get(cred.group_id)
        return {
            "id": cred.id, "uuid": cred.uuid, "recipient_name": cred.recipient.get("name"),
            "recipient_email": cred.recipient.get("email"),
            "recipient_id": cred.recipient.get("id"),
            "group": {"id": cred.group_id, "name": group.name if group else None,
                      "course_name": group.course_name if group else None},
            "license_id": cred.license_id, "issued_on": cred.issued_on.isoformat(),
            "expired_on": cred.expired_on.isoformat() if cred.expired_on else None,
            "approve": _published(cred),
            "published_on": cred.issued_on.isoformat() if _published(cred) else None,
            "created_at": iso_ms(cred.created_at), "updated_at": iso_ms(cred.updated_at),
        }

    # --- lists ----------------------------------------------------------------------------

    def groups(self, account: AccredibleAccount, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        """Groups of the account matching `ids`, `name`, `course_name`, updated-date bounds."""
        ids = criteria.get("ids")
        wanted = {_as_int(i) for i in ids} if isinstance(ids, list) else None
        rows = []
        for group in account.groups.values():
            if wanted is not None and group.id not in wanted:
                continue
            if not _contains(group.name, criteria.get("name")):
                continue
            if not _contains(group.course_name, criteria.get("course_name")):
                continue
            day = group.updated_at.date().isoformat()
            start, end = criteria.get("start_updated_date"), criteria.get("end_updated_date")
            if (start and day < str(start)[:10]) or (end and day > str(end)[:10]):
                continue
            rows.append(self.group_json(group))
        return rows

    def account_credentials(self, account: AccredibleAccount) -> list[AccredibleCredential]:
        return [c for c in self.credentials.values() if c.account_id == account.id]

    def search(self, account: AccredibleAccount, body: Any) -> dict[str, Any]:
        """POST /v2/credentials/search: `query` terms (eq, [in], [lt|lte|gt|gte]), sort, page."""
        body = body if isinstance(body, dict) else {}
        query = body.get("query") or {}
        page = body.get("page") or {}
        if not isinstance(query, dict) or not isinstance(page, dict):
            raise _bad_search("query and page must be objects")
        loose = bool(self.options.get("loose_filters"))
        terms = [term for key, value in query.items()
                 if (term := _search_term(key, value, loose=loose)) is not None]
        lag = float(self.options.get("accredible_search_lag_s") or 0)
        indexed = self.clock.now() - timedelta(seconds=lag)
        rows = [self.flat_json(c) for c in sorted(self.account_credentials(account),
                                                    key=lambda c: c.id)
                if not lag or c.updated_at <= indexed]
        rows = [row for row in rows if all(term(row) for term in terms)]
        sort = body.get("sort") or {}
        for name, direction in reversed(list(sort.items()) if isinstance(sort, dict) else []):
            getter = _SEARCH_FIELDS.get(name)
            if getter is None:
                raise _bad_search(f"unknown sort field {name}")
            rows.sort(key=lambda row, g=getter: (g(row) is None, str(g(row) or "")),
                      reverse=str(direction).lower() == "desc")
        size = min(max(_as_int(page.get("size")) or 50, 1), 100)
        cursor = page.get("cursor")
        if cursor not in (None, "") and page.get("from") is not None:
            raise _bad_search("page.from and page.cursor cannot be used together")
        if cursor not in (None, ""):
            start = _after_cursor(rows, cursor)
        else:
            start = max(_as_int(page.get("from")) or 0, 0)
            if start + size > SEARCH_WINDOW:
                raise _bad_search(f"from + size beyond {SEARCH_WINDOW}: use page.cursor")
        chosen = rows[start:start + size]
        return {"credentials": chosen,
                "meta": {"count": len(rows), "from": start, "size": size,
                         "cursor": _cursor_of(chosen[-1]) if chosen else None}}

    # --- writes ---------------------------------------------------------------------------

    def create(self, account: AccredibleAccount, body: Any) -> AccredibleCredential:
        """Create a credential after Accredible's checks (recipient, group, duplicates)."""
        data = body.get("credential") if isinstance(body, dict) else None
        data = data if isinstance(data, dict) else {}
        recipient = data.get("recipient") if isinstance(data.get("recipient"), dict) else {}
        missing = {f"recipient.{name}": ["can't be blank"] for name in ("name", "email")
                   if _blank(recipient.get(name))}
        if missing:
            raise accredible_error(422, missing)
        group = _by_id(account.groups, data.get("group_id"))
        if group is None:
            raise accredible_error(422, "Invalid Group")
        email = str(recipient["email"]).strip()
        if not group.allow_duplicate_credentials and self._taken(account, group, email):
            raise accredible_error(422, {"recipient.email": ["has already been taken"]})
        issued_on = _date_field(data, "issued_on") or self.clock.today()
        expired_on = _date_field(data, "expired_on")
        if expired_on is None and group.auto_expiry is not None:
            expired_on = _add_years(issued_on, group.auto_expiry)
        fields = {k: data[k] for k in _UPDATABLE if k in data}
        if data.get("approve", True) is not False:
            # Publishing costs a credit; without one the credential is created unpublished
            # (openapi.json, POST /v1/credentials: "will still be created ... not published").
            if self._spend_credit():
                fields["approve"] = True
            elif self.options.get("accredible_out_of_credits") == "refuse":
                raise accredible_error(422, "Insufficient credits")
            else:
                fields["approve"] = False
        now = self.clock.now()
        cred = AccredibleCredential(
            id=self.ids.integer(), account_id=account.id, group_id=group.id,
            recipient={"name": str(recipient["name"]), "email": email,
                       "id": recipient.get("id"), "meta_data": recipient.get("meta_data")},
            issued_on=issued_on, expired_on=expired_on, created_at=now, updated_at=now,
            encoded_id=self.ids.hex(), uuid=self.ids.uuid(), fields=fields,
            license_id=None if data.get("id") is None else str(data["id"]))
        self.credentials[cred.id] = cred
        return cred

    def credits_left(self) -> int | None:
        """Credits left in the emulator's pool (None: unlimited)."""
        credits = self.options.get("accredible_credits")
        return None if credits is None else max(0, int(credits) - self.credits_spent)

    def _spend_credit(self) -> bool:
        left = self.credits_left()
        if left is not None and left <= 0:
            return False
        self.credits_spent += 1
        return True

    def admit(self, client_ip: str) -> None:
        """Apply the per-IP budget (option `accredible_rate_limit`); over it, a 429 without
        Retry-After unless `rate_limit_retry_after` asks for one."""
        config = self.options.get("accredible_rate_limit")
        if not config:
            return
        wait = self.throttle.admit(client_ip, config)
        if wait is None:
            return
        retry_after = self.options.get("rate_limit_retry_after", False)
        headers: dict[str, str] = {}
        if retry_after is True:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        elif retry_after is not False:
            headers["Retry-After"] = str(int(retry_after))
        raise ApiError(429, {"errors": "Too Many Requests"}, headers)

    def _taken(self, account: AccredibleAccount, group: AccredibleGroup, email: str) -> bool:
        expired_count = self.options.get("accredible_expired_blocks_duplicates", True)
        today = self.clock.today()
        for cred in self.account_credentials(account):
            if cred.group_id != group.id:
                continue
            if not expired_count and cred.expired_on is not None and cred.expired_on <= today:
                continue
            if str(cred.recipient.get("email", "")).lower() == email.lower():
                return True
        return False

    def update(self, account: AccredibleAccount, credential_id: Any,
               body: Any) -> AccredibleCredential:
        """PUT and PATCH alike: change the fields given; `expired_on: null` un-expires."""
        cred = self.credential(account, credential_id)
        data = body.get("credential") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise accredible_error(422, "Can not update credential without credential data")
        changes = {k: data[k] for k in _UPDATABLE if k in data}
        if changes.get("approve") is True and not _published(cred) and not self._spend_credit():
            # Publishing needs a credit; still none: it stays unpublished (or the refusal).
            if self.options.get("accredible_out_of_credits") == "refuse":
                raise accredible_error(422, "Insufficient credits")
            changes["approve"] = False
        if "expired_on" in data:
            cred.expired_on = _date_field(data, "expired_on")
        if "issued_on" in data:
            cred.issued_on = _date_field(data, "issued_on") or cred.issued_on
        recipient = data.get("recipient")
        if isinstance(recipient, dict):
            cred.recipient.update({k: v for k, v in recipient.items()
                                   if k in ("name", "email", "id", "meta_data")})
        cred.fields.update(changes)
        cred.updated_at = self.clock.now()
        return cred

    def delete(self, account: AccredibleAccount, credential_id: Any) -> dict[str, Any]:
        """Remove a credential; the answer (and the test record) is the deleted one."""
        cred = self.credential(account, credential_id)
        answer = self.credential_json(cred)
        del self.credentials[cred.id]
        self.deleted.append({**self._record(cred), "deleted_at": iso_ms(self.clock.now())})
        return answer

    # --- test document --------------------------------------------------------------------

    def _record(self, cred: AccredibleCredential) -> dict[str, Any]:
        return {"id": cred.id, "account_id": cred.account_id,
                "account": self.accounts[cred.account_id].name, "group_id": cred.group_id,
                "recipient": {"name": cred.recipient.get("name"),
                              "email": cred.recipient.get("email"),
                              "id": cred.recipient.get("id")},
                "issued_on": cred.issued_on.isoformat(),
                "expired_on": cred.expired_on.isoformat() if cred.expired_on else None,
                "approve": _published(cred),
                "evidence_items": cred.fields.get("evidence_items") or [],
                "license_id": cred.license_id, "created_at": iso_ms(cred.created_at)}

    def document(self) -> dict[str, Any]:
        """The Accredible part of GET /_sandbox/state."""
        accounts = [{"id": a.id, "name": a.name,
                     "groups": [{"id": g.id, "course_name": g.course_name}
                                for g in a.groups.values()],
                     "designs": [d.id for d in a.designs.values()]}
                    for a in self.accounts.values()]
        return {"accounts": accounts,
                "credentials": [self._record(c) for c in self.credentials.values()],
                "deleted_credentials": list(self.deleted),
                "credits_spent": self.credits_spent, "credits_left": self.credits_left(),
                "rate_limit": self.throttle.document()}


def _contains(value: str, needle: Any) -> bool:
    return _blank(needle) or str(needle).lower() in value.lower()


def _years(value: Any) -> float | None:
    """A seeded `auto_expiry` in years; missing, non-numeric or <= 0 is None (ignored)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _add_years(day: date, years: float) -> date:
    """`day` plus whole years (29 February becomes 28 February); fractions as days."""
    whole = int(years)
    try:
        moved = day.replace(year=day.year + whole)
    except ValueError:
        moved = day.replace(year=day.year + whole, day=28)
    return moved + timedelta(days=round((years - whole) * 365.25))


def _published(cred: AccredibleCredential) -> bool:
    return cred.fields.get("approve", True) is not False


def _cursor_of(row: dict[str, Any]) -> str:
    """An opaque, URL-safe cursor naming the last row of a page (like the docs' base64)."""
    return base64.urlsafe_b64encode(json.dumps([row["id"]]).encode()).decode()


def _after_cursor(rows: list[dict[str, Any]], cursor: Any) -> int:
    """The index right after the row a cursor names; a cursor we never gave out is a 400."""
    try:
        (last_id,) = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
    except (ValueError, TypeError):
        raise _bad_search("invalid page.cursor") from None
    for index, row in enumerate(rows):
        if row["id"] == last_id:
            return index + 1
    raise _bad_search("invalid page.cursor")


def _date_field(data: dict[str, Any], name: str) -> date | None:
    """A date field in any accepted form; null/empty is None; anything else a 422."""
    value = data.get(name)
    if _blank(value):
        return None
    try:
        return parse_accredible_date(str(value))
    except ValueError:
        raise ApiError(422, {"errors": {name: ["is invalid"]}}) from None


_SEARCH_FIELDS: dict[str, Any] = {
    "id": lambda row: row["id"],
    "uuid": lambda row: row["uuid"],
    "recipient_email": lambda row: (row["recipient_email"] or "").lower(),
    "recipient_name": lambda row: row["recipient_name"],
    "recipient.id": lambda row: row["recipient_id"],
    "recipient_id": lambda row: row["recipient_id"],
    "group.id": lambda row: row["group"]["id"],
    "group_id": lambda row: row["group"]["id"],
    "approve": lambda row: row["approve"],
    "license_id": lambda row: row["license_id"],
    "issued_on": lambda row: row["issued_on"],
    "expired_on": lambda row: row["expired_on"],
    "published_on": lambda row: row["published_on"],
    "created_at": lambda row: row["created_at"],
    "updated_at": lambda row: row["updated_at"],
}
_OPERATOR = re.compile(r"^(?P<field>[a-z_.]+)(?:\[(?P<op>eq|in|lt|lte|gt|gte)\])?$")


def _bad_search(message: str) -> ApiError:
    return ApiError(400, {"code": 400, "message": message, "status": "invalid_search_query",
                          "errors": {}})


def _normalise(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in ("id", "group.id", "group_id"):
        number = _as_int(value)
        return number if number is not None else str(value)
    if field == "recipient_email":
        return str(value).lower()
    return str(value)


def _search_term(key: str, value: Any, *, loose: bool = False) -> Any:
    """One query term as a predicate over a flat row; unknown fields are a 400.

    `loose` (option `loose_filters`) plays a sloppier server: an unknown field is ignored
    (None is returned), and eq/in match when the wanted text occurs anywhere in the value
    (`ann@example.org` finds `joann@example.org`, group 900 finds 9001)."""
    found = _OPERATOR.match(key)
    if not found or found.group("field") not in _SEARCH_FIELDS:
        if loose:
            return None
        raise _bad_search(f"unknown search field {key}")
    name, op = found.group("field"), found.group("op")
    getter = _SEARCH_FIELDS[name]

    def actual(row: dict[str, Any]) -> Any:
        raw = getter(row)
        return None if raw is None else _normalise(name, raw)

    if op in (None, "eq", "in"):
        wanted = value if op == "in" and isinstance(value, list) else [value]
        values = {_normalise(name, v) for v in wanted}
        if loose:
            needles = [str(v).lower() for v in values if v is not None]
            return lambda row: actual(row) is not None and any(
                n in str(actual(row)).lower() for n in needles)
        return lambda row: actual(row) in values
    target = _normalise(name, value)
    compare = {"lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
               "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b}[op]

    def bounded(row: dict[str, Any]) -> bool:
        current = actual(row)
        if current is None or target is None:
            return False
        try:
            return bool(compare(current, target))
        except TypeError:
            return bool(compare(str(current), str(target)))
    return bounded
