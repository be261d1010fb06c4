"""Provider route plumbing: optional trailing slash, JSON bodies, errors, faults, the state lock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from badgetui.sandbox.errors import ApiError, accredible_error, credly_error
from badgetui.sandbox.state import SandboxState

if TYPE_CHECKING:
    from badgetui.sandbox.emulator import Emulator


@dataclass
class Call:
    """One provider request as a handler sees it: already parsed, inside the state lock."""

    emulator: Emulator
    state: SandboxState
    request: Request
    body: Any

    @property
    def authorization(self) -> str | None:
        return self.request.headers.get("authorization")

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[Call], Response]


def error_response(error: ApiError) -> Response:
    """The provider's refusal: JSON, or plain text when the body is a string."""
    if isinstance(error.body, str):
        return PlainTextResponse(error.body, status_code=error.status, headers=error.headers)
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


async def read_json(request: Request, *, credly: bool) -> Any:
    """The JSON body ({} when empty); malformed JSON is a 400 in the provider's shape."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise (credly_error(400, "Invalid JSON") if credly
               else accredible_error(400, "Invalid JSON")) from None


def api_route(emulator: Emulator, path: str, name: str, handler: Handler,
              methods: list[str]) -> list[Route]:
    """`path` and `path/` served by `handler`, counted and faulted as endpoint `name`."""
    credly = name.startswith("credly.")

    async def endpoint(request: Request) -> Response:
        async def respond() -> Response:
            try:
                body = (await read_json(request, credly=credly)
                        if request.method in ("POST", "PUT", "PATCH") else None)
                state = emulator.sandbox
                with state.lock:
                    return handler(Call(emulator, state, request, body))
            except ApiError as error:
                return error_response(error)
        return await emulator.faults.run(name, respond)

    return [Route(path, endpoint, methods=methods), Route(path + "/", endpoint, methods=methods)]
