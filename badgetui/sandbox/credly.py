"""Credly Web Service API v1 routes, under `/credly/v1/organizations/{org_id}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from badgetui.sandbox.credly_filters import (
    BADGE_FILTERS,
    TEMPLATE_FILTERS,
    apply_filters,
    apply_sort,
    parse_filter,
)
from badgetui.sandbox.credly_state import CredlyOrganization
from badgetui.sandbox.errors import credly_not_found
from badgetui.sandbox.paging import credly_page, last_params
from badgetui.sandbox.routing import Call, Handler, api_route

if TYPE_CHECKING:
    from badgetui.sandbox.emulator import Emulator

PREFIX = "/credly/v1/organizations/{org_id}"


def _org(call: Call) -> CredlyOrganization:
    return call.state.credly.authenticate(call.authorization, call.path("org_id"))


def _one(data: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse({"data": data, "metadata": {}}, status_code=status)


def _list(call: Call, items: list[dict[str, Any]], known: dict[str, Any] | None) -> Response:
    params = last_params(call.request)
    if known is not None:
        loose = bool(call.state.options.get("loose_filters"))
        filters = parse_filter(params.get("filter"), known, loose=loose)
        items = apply_filters(items, filters, known, loose=loose)
    items = apply_sort(items, params.get("sort"))
    return JSONResponse(credly_page(call.request, params, items))


def organization(call: Call) -> Response:
    return _one(call.state.credly.organization_json(_org(call)))


class _TemplatePage:
    """Templates as the page slicer sees a list: JSON is made only for the slice returned."""

    def __init__(self, credly: Any, org: Any, templates: list[Any]) -> None:
        self.credly, self.org, self.templates = credly, org, templates

    def __len__(self) -> int:
        return len(self.templates)

    def __getitem__(self, part: slice) -> list[dict[str, Any]]:
        return [self.credly.template_json(self.org, t) for t in self.templates[part]]


def list_templates(call: Call) -> Response:
    org = _org(call)
    credly = call.state.credly
    params = last_params(call.request)
    loose = bool(call.state.options.get("loose_filters"))
    filters = parse_filter(params.get("filter"), TEMPLATE_FILTERS, loose=loose)
    if not loose and not set(filters) - {"state"} and not params.get("sort"):
        # The common sync request (`state::active`, any page): filter the objects and render
        # only the page, so 200 pages of 10,000 templates stay cheap.
        states = {v.lower() for v in filters.get("state", [])}
        found = [t for t in org.templates.values() if not states or t.state.lower() in states]
        return JSONResponse(credly_page(call.request, params,
                                        _TemplatePage(credly, org, found)))  # type: ignore[arg-type]
    return _list(call, [credly.template_json(org, t) for t in org.templates.values()],
                 TEMPLATE_FILTERS)


def get_template(call: Call) -> Response:
    org = _org(call)
    credly = call.state.credly
    return _one(credly.template_json(org, credly.template(org, call.path("template_id"))))


def issue(call: Call) -> Response:
    org = _org(call)
    credly = call.state.credly
    return _one(credly.badge_json(credly.issue(org, call.body)), status=201)


def list_badges(call: Call) -> Response:
    return _list(call, call.state.credly.org_badges(_org(call)), BADGE_FILTERS)


def get_badge(call: Call) -> Response:
    org = _org(call)
    credly = call.state.credly
    return _one(credly.badge_json(credly.badge(org, call.path("badge_id"))))


def revoke(call: Call) -> Response:
    org = _org(call)
    credly = call.state.credly
    return _one(credly.badge_json(credly.revoke(org, call.path("badge_id"), call.body)))


def get_event(call: Call) -> Response:
    org = _org(call)
    return _one(call.state.credly.event(org, call.path("event_id")).to_json())


def list_tokens(call: Call) -> Response:
    org = _org(call)
    credly = call.state.credly
    return _list(call, [credly.key_json(org, k) for k in credly.live_keys(org)], None)


def rotate_token(call: Call) -> Response:
    """`POST authorization_tokens/rotate` (openedx/credentials PR #3000; providers.md: not
    confirmed): the caller's token is replaced; option `credly_rotate_endpoint` off = 404."""
    if not call.state.options.get("credly_rotate_endpoint", True):
        raise credly_not_found()
    org = _org(call)
    credly = call.state.credly
    return _one(credly.key_json(org, credly.rotate_key(org, call.authorization)))


ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("", "credly.organization", organization, ["GET"]),
    ("/badge_templates", "credly.templates.list", list_templates, ["GET"]),
    ("/badge_templates/{template_id}", "credly.templates.get", get_template, ["GET"]),
    ("/badges", "credly.issue", issue, ["POST"]),
    ("/badges", "credly.badges.list", list_badges, ["GET"]),
    ("/badges/{badge_id}", "credly.badges.get", get_badge, ["GET"]),
    ("/badges/{badge_id}/revoke", "credly.revoke", revoke, ["PUT"]),
    ("/events/{event_id}", "credly.events.get", get_event, ["GET"]),
    ("/authorization_tokens", "credly.tokens.list", list_tokens, ["GET"]),
    ("/authorization_tokens/rotate", "credly.tokens.rotate", rotate_token, ["POST"]),
]


def credly_routes(emulator: Emulator) -> list[Route]:
    """Every Credly endpoint, each also reachable with a trailing slash."""
    return [route for path, name, handler, methods in ROUTES
            for route in api_route(emulator, PREFIX + path, name, handler, methods)]
