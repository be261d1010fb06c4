"""Accredible Credential API routes, under `/accredible/v1/` and `/accredible/v2/`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from badgetui.sandbox.accredible_state import AccredibleAccount
from badgetui.sandbox.paging import accredible_page, last_params
from badgetui.sandbox.routing import Call, Handler, api_route

if TYPE_CHECKING:
    from badgetui.sandbox.emulator import Emulator


def _account(call: Call) -> AccredibleAccount:
    return call.state.accredible.authenticate(call.authorization)


def _credential(call: Call, credential: Any) -> Response:
    return JSONResponse({"credential": call.state.accredible.credential_json(credential)})


def issuer(call: Call) -> Response:
    return JSONResponse({"issuer": call.state.accredible.issuer_json(_account(call))})


def _groups(call: Call, criteria: dict[str, Any]) -> Response:
    rows = call.state.accredible.groups(_account(call), criteria)
    page, meta = accredible_page(rows, criteria.get("page"), criteria.get("page_size"))
    return JSONResponse({"groups": page, "meta": meta})


def all_groups(call: Call) -> Response:
    return _groups(call, dict(last_params(call.request)))


def search_groups(call: Call) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    return _groups(call, {**last_params(call.request), **body})


def get_group(call: Call) -> Response:
    accredible = call.state.accredible
    group = accredible.group(_account(call), call.path("group_id"))
    return JSONResponse({"group": accredible.group_json(group)})


def get_design(call: Call) -> Response:
    accredible = call.state.accredible
    design = accredible.design(_account(call), call.path("design_id"))
    return JSONResponse({"design": accredible.design_json(design)})


def create_credential(call: Call) -> Response:
    return _credential(call, call.state.accredible.create(_account(call), call.body))


def get_credential(call: Call) -> Response:
    return _credential(call, call.state.accredible.credential(_account(call),
                                                              call.path("credential_id")))


def update_credential(call: Call) -> Response:
    accredible = call.state.accredible
    return _credential(call, accredible.update(_account(call), call.path("credential_id"),
                                               call.body))


def delete_credential(call: Call) -> Response:
    deleted = call.state.accredible.delete(_account(call), call.path("credential_id"))
    return JSONResponse({"credential": deleted})


def search_credentials(call: Call) -> Response:
    return JSONResponse(call.state.accredible.search(_account(call), call.body))


def all_credentials(call: Call) -> Response:
    """Deprecated v1 listing, filtered by `group_id` and `email`; full credential objects."""
    accredible = call.state.accredible
    account = _account(call)
    params = last_params(call.request)
    group_id, email = params.get("group_id"), params.get("email")
    rows = [accredible.credential_json(c) for c in accredible.account_credentials(account)
            if (not group_id or str(c.group_id) == group_id.strip())
            and (not email or str(c.recipient.get("email", "")).lower() == email.lower())]
    page, meta = accredible_page(rows, params.get("page"), params.get("page_size"))
    return JSONResponse({"credentials": page, "meta": meta})


ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/v1/issuer/details", "accredible.issuer", issuer, ["GET"]),
    ("/v1/issuer/all_groups", "accredible.groups.list", all_groups, ["GET"]),
    ("/v1/issuer/groups/search", "accredible.groups.search", search_groups, ["POST"]),
    ("/v1/issuer/groups/{group_id}", "accredible.groups.get", get_group, ["GET"]),
    ("/v1/designs/{design_id}", "accredible.designs.get", get_design, ["GET"]),
    ("/v1/credentials", "accredible.credentials.create", create_credential, ["POST"]),
    ("/v1/credentials/{credential_id}", "accredible.credentials.get", get_credential, ["GET"]),
    ("/v1/credentials/{credential_id}", "accredible.credentials.update", update_credential,
     ["PUT", "PATCH"]),
    ("/v1/credentials/{credential_id}", "accredible.credentials.delete", delete_credential,
     ["DELETE"]),
    ("/v2/credentials/search", "accredible.credentials.search", search_credentials, ["POST"]),
    ("/v1/all_credentials", "accredible.credentials.list", all_credentials, ["GET"]),
]


def _client_ip(call: Call) -> str:
    client = call.request.client
    return client.host if client is not None else "unknown"


def _budgeted(handler: Handler) -> Handler:
    """The handler behind the per-IP budget (option `accredible_rate_limit`): the budget is
    spent by every Accredible request, the refused ones doing nothing else."""
    def run(call: Call) -> Response:
        call.state.accredible.admit(_client_ip(call))
        return handler(call)
    return run


def accredible_routes(emulator: Emulator) -> list[Route]:
    """Every Accredible endpoint, each also reachable with a trailing slash."""
    return [route for path, name, handler, methods in ROUTES
            for route in api_route(emulator, "/accredible" + path, name, _budgeted(handler),
                                   methods)]
