"""Data rule evaluation, exactly as semantics.md "Data rules" states, plus typed operators.

`eq`/`ne` compare as text; booleans are canonical on both sides; a missing or null path never
matches, for `eq` and `ne` alike (the Open edX code lets `ne` match a missing path; we do not).

Typed operators (configuration version 2) leave that meaning alone:
- `gt ge lt le` compare numbers as numbers and ISO 8601 dates and times as moments (a date
  alone is its midnight UTC; a time without zone is UTC); anything else, a missing or null
  value, or a number against a date, does not match (never a comparison of texts);
- `in` / `not_in` take a JSON array or a comma-separated list; membership is `eq`'s (text,
  canonical booleans) or, for numbers, numeric equality; a missing value matches neither;
- `exists` with `true` matches a present, non-null value, with `false` a missing or null one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

TRUE_WORDS: Final = frozenset({"true", "True", "yes", "Yes", "+"})
FALSE_WORDS: Final = frozenset({"false", "False", "no", "No", "-"})
BOOLEAN_WORDS: Final = TRUE_WORDS | FALSE_WORDS

#: Every spelling of an operator we accept, mapped to its canonical name. The documentation's
#: own words ("equals", "not equals") are accepted so its examples can be typed as written.
OPERATORS: Final[dict[str, str]] = {
    "eq": "eq",
    "=": "eq",
    "==": "eq",
    "equals": "eq",
    "ne": "ne",
    "!=": "ne",
    "not equals": "ne",
    "not_equals": "ne",
    "gt": "gt",
    ">": "gt",
    "ge": "ge",
    ">=": "ge",
    "gte": "ge",
    "lt": "lt",
    "<": "lt",
    "le": "le",
    "<=": "le",
    "lte": "le",
    "in": "in",
    "not_in": "not_in",
    "not in": "not_in",
    "exists": "exists",
}
#: The operators of configuration version 1 (the Open edX Credentials ones).
TEXT_OPERATORS: Final = frozenset({"eq", "ne"})
ORDERING: Final = frozenset({"gt", "ge", "lt", "le"})
MEMBERSHIP: Final = frozenset({"in", "not_in"})


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def canonical_op(op: str) -> str:
    """The canonical operator for any accepted spelling; ValueError names the bad one."""
    try:
        return OPERATORS[op.strip() if isinstance(op, str) else op]
    except (KeyError, TypeError):
        raise ValueError(f"unknown operator {op!r} (use eq, ne, gt, ge, lt, le, in, not_in "
                         "or exists)") from None


def canonical(value: Any) -> str | None:
    """Text form used for comparison; None for a null value (which never matches)."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if value in TRUE_WORDS:
            return "true"
        if value in FALSE_WORDS:
            return "false"
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def as_number(value: Any) -> float | None:
    """A finite number from an int, a float or numeric text; None otherwise (booleans too)."""
    if isinstance(value, bool) or value is None or value is MISSING:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in ("nan", "inf", "-inf", "+inf", "infinity"):
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_moment(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text (a date alone: its midnight UTC)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit() or text[4:5] != "-":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        moment = datetime(day.year, day.month, day.day)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def value_list(value: str) -> tuple[str, ...]:
    """The values of an `in` rule: a JSON array, else comma-separated text (trimmed)."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return tuple(c for c in (canonical(i) for i in items) if c is not None)
    return tuple(c for c in (canonical(p.strip()) for p in text.split(",")) if c)


def resolve(payload: Mapping[str, Any], parts: Sequence[str]) -> Any:
    """The value at a dot path inside the payload, or MISSING."""
    node: Any = payload
    for part in parts:
        if isinstance(node, Mapping):
            if part not in node:
                return MISSING
            node = node[part]
        else:
            return MISSING
    return node


@dataclass(frozen=True, slots=True)
class Rule:
    """One data rule: `path op value`, with its comparison form computed once."""

    path: str
    op: str
    value: str
    parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    expected: str | None = field(init=False, repr=False, compare=False)

    #: gt/ge/lt/le: the value as a number or a moment; in/not_in: the listed values
    _number: float | None = field(init=False, repr=False, compare=False)
    _moment: datetime | None = field(init=False, repr=False, compare=False)
    _members: frozenset[str] = field(init=False, repr=False, compare=False)
    _member_numbers: frozenset[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        op = canonical_op(self.op)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "parts", tuple(self.path.split(".")))
        object.__setattr__(self, "expected", canonical(self.value))
        number = as_number(self.value) if op in ORDERING else None
        object.__setattr__(self, "_number", number)
        object.__setattr__(self, "_moment", as_moment(self.value) if op in ORDERING and
                           number is None else None)
        members = value_list(self.value) if op in MEMBERSHIP else ()
        object.__setattr__(self, "_members", frozenset(members))
        object.__setattr__(self, "_member_numbers", frozenset(
            n for n in (as_number(m) for m in members) if n is not None))

    def matches(self, payload: Mapping[str, Any]) -> bool:
        raw = resolve(payload, self.parts)
        op = self.op
        if op == "exists":
            present = raw is not MISSING and raw is not None
            return present == (self.expected != "false")
        actual = canonical(raw)
        if actual is None:
            return False
        if op == "eq":
            return actual == self.expected
        if op == "ne":
            return actual != self.expected
        if op in MEMBERSHIP:
            number = as_number(raw) if self._member_numbers else None
            member = actual in self._members or (number is not None
                                                 and number in self._member_numbers)
            return member if op == "in" else not member
        return self._ordered(raw)

    def _ordered(self, raw: Any) -> bool:
        left: Any
        right: Any
        if self._number is not None:
            left, right = as_number(raw), self._number
        elif self._moment is not None:
            left, right = as_moment(raw), self._moment
        else:
            return False  # a rule on text: lint says so; it never matches
        if left is None:
            return False
        if self.op == "gt":
            return bool(left > right)
        if self.op == "ge":
            return bool(left >= right)
        if self.op == "lt":
            return bool(left < right)
        return bool(left <= right)

    def describe(self) -> str:
        return f"{self.path} {self.op} {self.value!r}"


def all_match(rules: Iterable[Rule], payload: Mapping[str, Any]) -> bool:
    """True when every rule matches; an empty rule list matches every payload."""
    return all(rule.matches(payload) for rule in rules)


def first_failing(rules: Sequence[Rule], payload: Mapping[str, Any]) -> int | None:
    """Index of the first rule that does not match, or None when all match."""
    for index, rule in enumerate(rules):
        if not rule.matches(payload):
            return index
    return None
