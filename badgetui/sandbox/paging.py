"""Both providers' paging: Credly's metadata with absolute URLs, Accredible's `meta` block."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from badgetui.sandbox.errors import credly_error

CREDLY_DEFAULT_PER = 50
CREDLY_MAX_PER = 100
ACCREDIBLE_DEFAULT_PAGE_SIZE = 50
ACCREDIBLE_MAX_PAGE_SIZE = 100


def last_params(request: Request) -> dict[str, str]:
    """Query parameters with the last of repeated ones winning, in first-seen order."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params[key] = value
    return params


def _positive(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return max(int(raw), 1)
    except ValueError:
        raise credly_error(400, f"Invalid {name}: {raw}") from None


def credly_page(request: Request, params: dict[str, str],
                items: list[dict[str, Any]]) -> dict[str, Any]:
    """One page as `{data, metadata}`; next/previous URLs are on the request's own origin."""
    page = _positive(params, "page", 1)
    per = min(_positive(params, "per", CREDLY_DEFAULT_PER), CREDLY_MAX_PER)
    total = len(items)
    total_pages = math.ceil(total / per)
    data = items[(page - 1) * per: page * per]

    def url(number: int) -> str:
        query = {**params, "page": str(number)}
        return str(request.url.replace(query=urlencode(query)))

    previous = min(page - 1, total_pages)
    return {"data": data, "metadata": {
        "count": len(data), "current_page": page, "total_count": total,
        "total_pages": total_pages, "per": per,
        "previous_page_url": url(previous) if previous >= 1 else None,
        "next_page_url": url(page + 1) if page < total_pages else None,
    }}


def _lenient_int(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number >= 1 else default


def accredible_page(items: list[Any], page: Any,
                    page_size: Any) -> tuple[list[Any], dict[str, Any]]:
    """Slice `items` by 1-based `page` and `page_size` (default 50, capped at 100)."""
    number = _lenient_int(page, 1)
    size = min(_lenient_int(page_size, ACCREDIBLE_DEFAULT_PAGE_SIZE), ACCREDIBLE_MAX_PAGE_SIZE)
    total = len(items)
    total_pages = math.ceil(total / size)
    rows = items[(number - 1) * size: number * size]
    previous = min(number - 1, total_pages)
    return rows, {"current_page": number,
                  "next_page": number + 1 if number < total_pages else None,
                  "prev_page": previous if previous >= 1 else None,
                  "total_pages": total_pages, "total_count": total, "page_size": size}
