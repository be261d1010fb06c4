"""Open edX event payloads (openedx-events.md §2) and the intake parser (formats.md).

Field order of every record is the wire order; the Avro schemas of the event bus are built
from these classes, so the CCX record keeps `is_passing, user, course`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from badgetui.domain.event_records import (
    BADGE_AWARDED,
    BADGE_REVOKED,
    CCX_COURSE_PASSING,
    COURSE_PASSING,
    DEFAULT_EVENTS,
    EVENT_SPECS,
    SELF,
    EventSpec,
)

__all__ = [
    "BADGE_AWARDED", "BADGE_REVOKED", "CCX_COURSE_PASSING", "COURSE_PASSING", "DEFAULT_EVENTS",
    "EVENT_SPECS", "OUTCOMES", "Event", "EventError", "EventSpec", "parse_line", "parse_object",
]


Outcome = Literal["processed", "ignored", "dropped", "duplicate", "rejected"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("processed", "ignored", "dropped", "duplicate", "rejected")


@dataclass(slots=True)
class Event:
    """A parsed event ready for processing (or an ignored/dropped/rejected one, with a reason).

    `payload` is the record as JSON-compatible data with defaults filled in: data rule paths
    start here (`is_passing`, `course.course_key`, ...).
    """

    id: str | None
    event_type: str | None
    time: datetime | None
    payload: dict[str, Any] | None
    status: Literal["ok", "ignored", "dropped", "rejected"]
    reason: str = ""
    line: int | None = None
    raw: str | None = None
    #: The payload field holding the learner (`EventSpec.user_key`; SELF: the payload).
    user_key: str = "user"

    @property
    def user(self) -> dict[str, Any] | None:
        if self.payload is None:
            return None
        user = self.payload if self.user_key == SELF else self.payload.get(self.user_key)
        return user if isinstance(user, dict) else None

    def with_user(self, user: dict[str, Any]) -> dict[str, Any] | None:
        """The payload with its learner record replaced (None when there is no payload)."""
        if self.payload is None:
            return None
        return dict(user) if self.user_key == SELF else {**self.payload, self.user_key: user}

    @property
    def username(self) -> str | None:
        user = self.user
        if not user:
            return None
        pii = user.get("pii")
        return pii.get("username") if isinstance(pii, dict) else None


class EventError(ValueError):
    """Raised inside the parser; becomes a `rejected` outcome with this message."""


def content_id(obj: Any) -> str:
    """Stable id for an event that carries none: a hash of its canonical JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: the same bytes as UTF-8 for any valid text, and no crash on a lone
    # surrogate (such an event is rejected afterwards, but it still needs its id).
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


#: Longest quoted value in a reason: a 10 MB field must not come back as a 10 MB line.
QUOTE_LIMIT = 60
#: Longest reason kept (whatever built it).
REASON_LIMIT = 300
#: Integers a database column can hold (BIGINT); larger ones are refused with their path.
INT_RANGE = (-(2**63), 2**63 - 1)


def quote(value: Any) -> str:
    """`repr` of a value, cut to a readable length with the full size named."""
    text = repr(value)
    if len(text) <= QUOTE_LIMIT:
        return text
    size = len(value) if isinstance(value, str | bytes | list | dict) else len(text)
    return f"{text[:QUOTE_LIMIT]}… ({size:,} characters)"


def _segment(key: Any) -> str:
    """A key as it may appear in a reason: surrogates escaped, cut to 40 characters."""
    text = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 40 else text[:40] + "…"


def unstorable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why a decoded value cannot be stored faithfully (a lone surrogate, an integer beyond
    64 bits), naming where; None when it can. Iterative depth is bounded by the JSON parser."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path or 'value'} holds a lone surrogate (not valid Unicode text)"
        return None
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            return f"{path or 'value'} is an integer beyond 64 bits ({len(str(value))} digits)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}{'.' if path else ''}{_segment(key)}"
            problem = unstorable(key, f"{where} (the key)", depth + 1) or unstorable(
                item, where, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = unstorable(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
    return None


def parse_time(value: Any) -> datetime:
    """ISO-8601 with an offset, converted to UTC; naive times are refused."""
    if not isinstance(value, str):
        raise EventError(f"time must be an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise EventError(f"time {quote(value)} is not ISO-8601") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise EventError(f"time {quote(value)} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable UTC time
        raise EventError(f"time {quote(value)} is out of range in UTC") from None


def _validation_reason(exc: ValidationError, key: str) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f"{key}.{loc}" if loc else key
    kind = err["type"]
    if kind == "missing":
        return f"{where} is missing"
    if kind in ("bool_type",):
        return f"{where} is not a boolean"
    if kind in ("int_type",):
        return f"{where} is not an integer"
    if kind in ("string_type",):
        return f"{where} is not a string"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{where} is not an object"
    return f"{where}: {err['msg']}"


def _user_problem(payload: dict[str, Any], user_key: str = "user") -> str | None:
    """Why this payload identifies no learner (the event is then dropped), or None."""
    user = payload if user_key == SELF else payload.get(user_key)
    if user is None:
        return "no user data" if user_key == "user" else f"no user data ({user_key} missing)"
    if not isinstance(user, dict):
        return None  # a wrong shape is a rejection, reported by validation
    where = f"{user_key}." if user_key else ""
    pii = user.get("pii")
    if pii is None:
        return f"no user data ({where}pii missing)"
    if isinstance(pii, dict) and pii.get("username") in (None, ""):
        return f"no username ({where}pii.username missing)"
    return None


def _envelope(obj: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(id, event_type, time, data) from a flat event or a bus envelope."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        event_type = meta.get("event_type", meta.get("type"))
        return meta.get("id"), event_type, meta.get("time"), obj.get("data")
    if meta is not None:
        raise EventError("metadata is not an object")
    return obj.get("id"), obj.get("event_type"), obj.get("time"), obj.get("data")


def parse_object(obj: Any, configured: frozenset[str], now: datetime) -> Event:
    """Classify one decoded JSON value: ok, ignored, dropped or rejected (with a reason)."""
    if not isinstance(obj, dict):
        return Event(None, None, None, None, "rejected", f"not an object ({type(obj).__name__})")
    if _nests_deeper(obj, MAX_DEPTH):
        return Event(None, None, None, None, "rejected", f"nested deeper than {MAX_DEPTH} levels")
    return _classify(obj, configured, now)


#: Deepest nesting of objects and arrays an event may have (a valid one has 5 levels). Checked
#: without recursion before anything recursive (the checks, validation, hashing) walks it, so
#: how deep the caller's stack already is cannot turn a line into a RecursionError.
MAX_DEPTH = 64


def _nests_deeper(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _classify(obj: dict[str, Any], configured: frozenset[str], now: datetime) -> Event:
    ref_id: str | None = None
    event_type: Any = None
    try:
        problem = unstorable(obj)
        if problem:
            raw_id = obj.get("id")
            ref_id = raw_id if isinstance(raw_id, str) and unstorable(raw_id) is None \
                and raw_id.strip() else content_id(obj)
            raise EventError(problem)
        raw_id, event_type, raw_time, data = _envelope(obj)
        if raw_id is not None and (not isinstance(raw_id, str) or not raw_id.strip()):
            raise EventError("id must be a non-empty string")
        ref_id = raw_id if raw_id is not None else content_id(obj)
        if event_type is None:
            raise EventError("no event_type")
        if not isinstance(event_type, str) or not event_type:
            raise EventError("event_type must be a non-empty string")
        if event_type not in configured:
            return Event(ref_id, event_type, None, None, "ignored", "event type not configured")
        time = now if raw_time is None else parse_time(raw_time)
        if not isinstance(data, dict):
            raise EventError("data is missing" if data is None else "data is not an object")
        spec = EVENT_SPECS.get(event_type)
        if spec is None:
            return _custom_event(ref_id, event_type, time, data)
        record = data.get(spec.data_key)
        if record is None:
            keys = ", ".join(sorted(data)) or "nothing"
            raise EventError(
                f"data key does not fit the type: expected {spec.data_key}, got {keys}"
            )
        if not isinstance(record, dict):
            raise EventError(f"{spec.data_key} is not an object")
        dropped = _user_problem(record, spec.user_key)
        if dropped:
            if spec.user_key != SELF:
                rest = {k: v for k, v in record.items() if k != spec.user_key}
                _validate(spec, rest, partial=True)
            return Event(ref_id, event_type, time, None, "dropped", dropped,
                         user_key=spec.user_key)
        payload = _validate(spec, record, partial=False)
        return Event(ref_id, event_type, time, payload, "ok", user_key=spec.user_key)
    except EventError as exc:
        etype = event_type if isinstance(event_type, str) and unstorable(event_type) is None \
            else None
        return Event(ref_id, etype, None, None, "rejected", str(exc)[:REASON_LIMIT])


def _validate(spec: EventSpec, record: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    try:
        model = spec.record.model_validate(record)
    except ValidationError as exc:
        if partial:
            errors = [e for e in exc.errors(include_url=False)
                      if e["loc"][:1] != (spec.user_key,)]
            if not errors:
                return {}
        raise EventError(_validation_reason(exc, spec.data_key)) from None
    return model.model_dump(mode="json")


def _custom_event(ref_id: str, event_type: str, time: datetime, data: dict[str, Any]) -> Event:
    """A configured type we hold no schema for: its payload is the data's single record."""
    payload: Any = data
    if len(data) == 1:
        payload = next(iter(data.values()))
    if not isinstance(payload, dict):
        raise EventError("data record is not an object")
    dropped = _user_problem(payload)
    if dropped:
        return Event(ref_id, event_type, time, None, "dropped", dropped)
    return Event(ref_id, event_type, time, payload, "ok")


def parse_line(text: str, line: int | None, configured: frozenset[str], now: datetime) -> Event:
    """Parse one JSON Lines line; the line number travels with every outcome."""
    text = text.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"not JSON ({exc.msg} at column {exc.colno})"
        event = Event(None, None, None, None, "rejected", reason)
    except RecursionError:
        event = Event(None, None, None, None, "rejected", "not JSON (nested too deeply)")
    else:
        event = parse_object(obj, configured, now)
    event.line = line
    if event.status == "rejected":
        event.raw = text[:2000]
    return event


def payload_paths(record: type[BaseModel], prefix: str = "") -> dict[str, type]:
    """Every leaf key path of a record with its Python type, for rule editing and lint."""
    paths: dict[str, type] = {}
    for name, info in record.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.update(payload_paths(annotation, path + "."))
            continue
        base = annotation
        if get_origin(base) in (Union, UnionType):  # T | None
            base = next(a for a in get_args(base) if a is not type(None))
        if get_origin(base) is Annotated:
            base = get_args(base)[0]
        base = get_origin(base) or base  # dict[str, str] -> dict: a map, keyed below the path
        paths[path] = base if isinstance(base, type) else object
    return paths


def has_path(paths: dict[str, type], path: str) -> bool:
    """Whether a rule's key path exists: a leaf, or a key under a map (`options.followed`)."""
    if path in paths:
        return True
    parts = path.split(".")
    return any(paths.get(".".join(parts[:n])) is dict for n in range(1, len(parts)))


def event_paths(event_type: str) -> dict[str, type] | None:
    """Key paths of a known event type's payload, or None when the type has no schema."""
    spec = EVENT_SPECS.get(event_type)
    return None if spec is None else payload_paths(spec.record)
