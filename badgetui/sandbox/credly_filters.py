"""Credly's `filter=key::value|key::v1,v2` and `sort=a|-b` query language over JSON objects.

`loose` (the emulator's `loose_filters` switch) behaves as a real server may: identifier and
email terms also match by prefix or substring, and unknown keys are ignored instead of a 400,
so clients that trust the filter adopt another learner's badge (issue 10).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from badgetui.sandbox.errors import credly_error

Matcher = Callable[[dict[str, Any], list[str], bool], bool]
Filters = dict[str, list[str]]


def parse_filter(text: str | None, known: Mapping[str, Matcher], *,
                 loose: bool = False) -> Filters:
    """Split a filter into key -> values; an unknown key or a term without `::` is a 400
    (ignored when `loose`)."""
    filters: Filters = {}
    if not text:
        return filters
    for term in text.split("|"):
        if not term.strip():
            continue
        key, sep, value = term.partition("::")
        key = key.strip()
        if not sep:
            raise credly_error(400, f"Invalid filter term: {term}")
        if key not in known:
            if loose:
                continue
            raise credly_error(400, f"Invalid filter key: {key}")
        filters[key] = [v.strip() for v in value.split(",") if v.strip()]
    return filters


def apply_filters(items: list[dict[str, Any]], filters: Filters,
                  known: Mapping[str, Matcher], *, loose: bool = False) -> list[dict[str, Any]]:
    """Keep the items every term matches (values of one key are alternatives)."""
    return [item for item in items
            if all(known[key](item, values, loose) for key, values in filters.items())]


def apply_sort(items: list[dict[str, Any]], sort: str | None) -> list[dict[str, Any]]:
    """Stable multi-key sort; a leading `-` is descending, unknown keys are ignored."""
    if not sort:
        return items
    result = list(items)
    for raw in reversed([k.strip() for k in sort.split("|") if k.strip()]):
        descending = raw.startswith("-")
        key = raw.lstrip("-+")
        if not result or key not in result[0]:
            continue
        result.sort(key=lambda item, k=key: _sort_key(item.get(k)), reverse=descending)
    return result


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value).lower())


def _loosely(text: str, values: list[str]) -> bool:
    """Prefix or substring either way ("learner1" finds "learner12" and the reverse)."""
    return any(v and (v in text or text.startswith(v) or v.startswith(text)) for v in values)


def _field_in(field: str, *, fold: bool = False) -> Matcher:
    def match(item: dict[str, Any], values: list[str], loose: bool) -> bool:
        value = item.get(field)
        if value is None:
            return loose  # a loose server may not filter on a field it lacks
        text = str(value).lower() if fold else str(value)
        wanted = [v.lower() for v in values] if fold else values
        return _loosely(text, wanted) if loose else text in wanted
    return match


def _contains(*fields: str) -> Matcher:
    def match(item: dict[str, Any], values: list[str], loose: bool) -> bool:
        haystack = " ".join(str(item.get(f) or "") for f in fields).lower()
        return any(v.lower() in haystack for v in values)
    return match


def _bool_field(field: str) -> Matcher:
    def match(item: dict[str, Any], values: list[str], loose: bool) -> bool:
        return any(bool(item.get(field)) == (v.lower() == "true") for v in values)
    return match


def _date_bound(field: str, *, upper: bool) -> Matcher:
    def match(item: dict[str, Any], values: list[str], loose: bool) -> bool:
        day = str(item.get(field) or "")[:10]
        return all((day <= v[:10]) if upper else (day >= v[:10]) for v in values)
    return match


def _owner_id(item: dict[str, Any], values: list[str], loose: bool) -> bool:
    return (item.get("owner") or {}).get("id") in values


TEMPLATE_FILTERS: dict[str, Matcher] = {
    "state": _field_in("state", fold=True),
    "name": _contains("name"),
    "query": _contains("name", "description"),
    "public": _bool_field("public"),
    "owner_id": _owner_id,
    "created_at_min": _date_bound("created_at", upper=False),
    "created_at_max": _date_bound("created_at", upper=True),
    "updated_at_min": _date_bound("updated_at", upper=False),
    "updated_at_max": _date_bound("updated_at", upper=True),
}


def _template_id(item: dict[str, Any], values: list[str], loose: bool) -> bool:
    found = str((item.get("badge_template") or {}).get("id") or "")
    return _loosely(found, values) if loose else found in values


BADGE_FILTERS: dict[str, Matcher] = {
    "issuer_earner_id": _field_in("issuer_earner_id"),
    "badge_template_id": _template_id,
    "recipient_email_all": _field_in("recipient_email", fold=True),
    "recipient_email": _field_in("recipient_email", fold=True),
    "state": _field_in("state", fold=True),
    "query": _contains("recipient_email", "issued_to", "issuer_earner_id"),
}
