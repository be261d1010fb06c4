"""The one ASGI application serving Credly, Accredible and the control API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from badgetui.sandbox.accredible import accredible_routes
from badgetui.sandbox.control import control_routes
from badgetui.sandbox.credly import credly_routes
from badgetui.sandbox.credly_oauth import oauth_routes

if TYPE_CHECKING:
    from badgetui.sandbox.emulator import Emulator


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the shape of the provider they were meant for."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = "Not found" if status == 404 else "Method not allowed" if status == 405 else "Error"
    path = request.url.path
    if path.startswith("/credly/"):
        body: object = {"data": {"message": message}}
    elif path.startswith("/accredible/"):
        body = {"errors": "Doesn't exist" if status == 404 else message}
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status)


def build_app(emulator: Emulator) -> Starlette:
    """Routes for both providers and the control API; the lifespan ties webhooks to the loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        emulator.webhooks.server_loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            emulator.faults.release_hangs()
            emulator.webhooks.server_loop = None

    routes = (credly_routes(emulator) + oauth_routes(emulator) + accredible_routes(emulator)
              + control_routes(emulator))
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error})
