"""Data rule evaluation, exactly as semantics.md "Data rules" states.

Values compare as text; booleans are canonical on both sides; a missing or null path never
matches, for `eq` and `ne` alike (the Open edX code lets `ne` match a missing path; we do not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
}


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
        raise ValueError(f"unknown operator {op!r} (use eq or ne)") from None


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", canonical_op(self.op))
        object.__setattr__(self, "parts", tuple(self.path.split(".")))
        object.__setattr__(self, "expected", canonical(self.value))

    def matches(self, payload: Mapping[str, Any]) -> bool:
        actual = canonical(resolve(payload, self.parts))
        if actual is None:
            return False
        if self.op == "eq":
            return actual == self.expected
        return actual != self.expected

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
