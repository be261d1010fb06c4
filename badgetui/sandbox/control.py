"""The control API under `/_sandbox/`: no auth, never faulted, not counted.

It mirrors the in-process `Emulator` methods so a test or a demo in another process can drive
the emulator the same way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from badgetui.sandbox.emulator import Emulator

ControlHandler = Callable[["Emulator", Request, Any], Any]


def _control(emulator: Emulator, handler: ControlHandler) -> Callable[[Request],
                                                                        Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return JSONResponse({"error": "invalid JSON"}, status_code=400)
        try:
            return JSONResponse(handler(emulator, request, body))
        except LookupError as error:
            return JSONResponse({"error": str(error.args[0] if error.args else error)},
                                status_code=404)
        except (ValueError, TypeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
    return endpoint


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def get_state(emulator: Emulator, request: Request, body: Any) -> Any:
    return emulator.state()


def get_counters(emulator: Emulator, request: Request, body: Any) -> Any:
    return emulator.counters()


def get_faults(emulator: Emulator, request: Request, body: Any) -> Any:
    return emulator.faults.rules()


def put_faults(emulator: Emulator, request: Request, body: Any) -> Any:
    emulator.set_faults(_object(body))
    return emulator.faults.rules()


def get_options(emulator: Emulator, request: Request, body: Any) -> Any:
    return dict(emulator.options)


def put_options(emulator: Emulator, request: Request, body: Any) -> Any:
    return emulator.set_options(_object(body))


def reset(emulator: Emulator, request: Request, body: Any) -> Any:
    seed = _object(body).get("seed")
    if seed is not None and not isinstance(seed, dict):
        raise ValueError("seed must be an object")
    emulator.reset(seed)
    return {"ok": True}


def clock(emulator: Emulator, request: Request, body: Any) -> Any:
    seconds = _object(body).get("advance_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("advance_seconds must be a number")
    emulator.advance_clock(seconds)
    return {"now": emulator.state()["now"]}


def credly_template(emulator: Emulator, request: Request, body: Any) -> Any:
    data = _object(body)
    return emulator.credly_template(str(data.get("organization_id")), str(data.get("action")),
                                    data.get("template") or {})


def credly_badge_state(emulator: Emulator, request: Request, body: Any) -> Any:
    data = _object(body)
    reason = data.get("reason")
    return emulator.set_credly_badge_state(request.path_params["badge_id"],
                                           str(data.get("state")),
                                           None if reason is None else str(reason))


def credly_badge_delete(emulator: Emulator, request: Request, body: Any) -> Any:
    return emulator.delete_credly_badge(request.path_params["badge_id"])


def credly_webhook(emulator: Emulator, request: Request, body: Any) -> Any:
    url = _object(body).get("webhook_url")
    emulator.set_credly_webhook_url(request.path_params["org_id"], url)
    return {"organization_id": request.path_params["org_id"], "webhook_url": url}


CONTROL: list[tuple[str, ControlHandler, list[str]]] = [
    ("/state", get_state, ["GET"]),
    ("/counters", get_counters, ["GET"]),
    ("/faults", get_faults, ["GET"]),
    ("/faults", put_faults, ["PUT"]),
    ("/options", get_options, ["GET"]),
    ("/options", put_options, ["PUT"]),
    ("/reset", reset, ["POST"]),
    ("/clock", clock, ["POST"]),
    ("/credly/templates", credly_template, ["POST"]),
    ("/credly/badges/{badge_id}/state", credly_badge_state, ["POST"]),
    ("/credly/badges/{badge_id}", credly_badge_delete, ["DELETE"]),
    ("/credly/organizations/{org_id}/webhook", credly_webhook, ["PUT"]),
]


def control_routes(emulator: Emulator) -> list[Route]:
    """The control endpoints, with and without a trailing slash."""
    routes = []
    for path, handler, methods in CONTROL:
        endpoint = _control(emulator, handler)
        routes += [Route("/_sandbox" + path, endpoint, methods=methods),
                   Route("/_sandbox" + path + "/", endpoint, methods=methods)]
    return routes
