"""Credly's OAuth 2.0 client-credentials grant, emulated (providers.md §1.2).

Seed: each organization may list `oauth_applications: [{client_id, client_secret[, scopes]}]`.
`POST .../oauth/token` takes `client_id`, `client_secret`, `grant_type=client_credentials` and
`scope` as a form or a JSON body (or the client as HTTP Basic, as RFC 6749 §2.3.1 allows and
the Open edX Credentials client sends), and answers Doorkeeper's shape: `access_token`,
`token_type: "Bearer"`, `expires_in` (option `credly_oauth_expires_in`, 7200 by default),
`scope`, `created_at`. The token is dead after `expires_in` on the emulator's clock; the API
then answers 401.

Where the endpoint lives is not settled (Credly's docs: the web host, `www.credly.com`; the
Credentials client: the API host), so the emulator serves both `/credly/oauth/token` (the
web-host reading) and `/oauth/token` (the API host's origin); option `credly_oauth_paths`
("both", "web", "api") turns one of them off (404) so a client's fallback can be tested.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from badgetui.sandbox.clock import SandboxClock
from badgetui.sandbox.errors import ApiError
from badgetui.sandbox.ids import IdSource

if TYPE_CHECKING:
    from badgetui.sandbox.emulator import Emulator

SCOPES = ("authorization_tokens", "badge_templates", "events", "invitations", "issued_badges",
          "memberships", "recommendations", "workforce")
OAUTH_PATHS = ("both", "web", "api")
#: The fault/counter names of this module's routes (beside `credly.ROUTES`).
ENDPOINT_NAMES = ("credly.oauth.token",)
WEB_PATH = "/credly/oauth/token"
API_PATH = "/oauth/token"
INVALID_CLIENT = ("Client authentication failed due to unknown client, no client "
                  "authentication included, or unsupported authentication method.")


def oauth_error(status: int, error: str, description: str) -> ApiError:
    """Doorkeeper's error answer: `{"error", "error_description"}`."""
    return ApiError(status, {"error": error, "error_description": description})


@dataclass
class OAuthApplication:
    client_id: str
    client_secret: str
    organization_id: str
    scopes: tuple[str, ...] = SCOPES


@dataclass
class AccessToken:
    token: str
    organization_id: str
    client_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime


@dataclass
class CredlyOAuthState:
    """OAuth applications (by client id) and the access tokens they were given."""

    clock: SandboxClock
    ids: IdSource
    options: dict[str, Any]
    applications: dict[str, OAuthApplication] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)

    def load(self, organization_id: str, raw_apps: list[dict[str, Any]]) -> None:
        for raw in raw_apps:
            scopes = tuple(raw.get("scopes") or SCOPES)
            app = OAuthApplication(str(raw["client_id"]), str(raw["client_secret"]),
                                   organization_id, scopes)
            self.applications[app.client_id] = app

    def grant(self, params: dict[str, str]) -> dict[str, Any]:
        """A client-credentials grant, or Doorkeeper's refusal."""
        app = self.applications.get(params.get("client_id", ""))
        if app is None or app.client_secret != params.get("client_secret"):
            raise oauth_error(401, "invalid_client", INVALID_CLIENT)
        if params.get("grant_type") != "client_credentials":
            raise oauth_error(400, "unsupported_grant_type",
                              "The authorization grant type is not supported by the "
                              "authorization server.")
        asked = tuple(params.get("scope", "").split()) or app.scopes
        if any(scope not in app.scopes for scope in asked):
            raise oauth_error(400, "invalid_scope", "The requested scope is invalid, unknown, "
                              "or malformed.")
        now = self.clock.now()
        lifetime = int(self.options.get("credly_oauth_expires_in") or 7200)
        token = AccessToken(f"oauth-{self.ids.hex(32)}", app.organization_id, app.client_id,
                            asked, now, now + timedelta(seconds=lifetime))
        self.tokens[token.token] = token
        return {"access_token": token.token, "token_type": "Bearer", "expires_in": lifetime,
                "scope": " ".join(asked), "created_at": int(now.timestamp())}

    def organization_of(self, token: str | None) -> str | None:
        """The organization a live access token belongs to (None: unknown or expired)."""
        found = self.tokens.get(token or "")
        if found is None or self.clock.now() >= found.expires_at:
            return None
        return found.organization_id

    def revoke_all(self) -> int:
        """Kill every access token at once (a test of the client's refresh on 401)."""
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def document(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"applications": sorted(self.applications),
                "tokens_issued": len(self.tokens),
                "tokens_live": sum(1 for t in self.tokens.values() if now < t.expires_at)}


def check_oauth_options(options: dict[str, Any]) -> None:
    """Validate this module's emulator options (called from `merge_options`)."""
    if options.get("credly_oauth_paths") not in OAUTH_PATHS:
        raise ValueError(f"credly_oauth_paths must be one of {OAUTH_PATHS}")
    lifetime = options.get("credly_oauth_expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
        raise ValueError("credly_oauth_expires_in must be a positive number of seconds")
    grace = options.get("credly_rotate_grace_s")
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise ValueError("credly_rotate_grace_s must be a non-negative number of seconds")


def _basic_client(header: str | None) -> dict[str, str]:
    """client_id/client_secret from `Authorization: Basic base64(id:secret)`, if sent."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return {}
    client_id, sep, secret = decoded.partition(":")
    return {"client_id": client_id, "client_secret": secret} if sep else {}


async def _params(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    params: dict[str, str] = {}
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise oauth_error(400, "invalid_request", "The request body is not JSON.") from None
        if isinstance(body, dict):
            params = {str(k): str(v) for k, v in body.items() if v is not None}
    else:
        params = dict(parse_qsl(raw, keep_blank_values=True))
    return {**_basic_client(request.headers.get("authorization")), **params}


def oauth_routes(emulator: Emulator) -> list[Route]:
    """`POST /credly/oauth/token` and `POST /oauth/token`, counted and faulted as
    `credly.oauth.token`."""

    def endpoint_for(where: str) -> Any:
        async def endpoint(request: Request) -> Response:
            async def respond() -> Response:
                paths = emulator.options.get("credly_oauth_paths", "both")
                if paths not in ("both", where):
                    return JSONResponse({"error": "Not found"}, status_code=404)
                try:
                    params = await _params(request)
                    state = emulator.sandbox
                    with state.lock:
                        body = state.credly.oauth.grant(params)
                except ApiError as error:
                    return JSONResponse(error.body, status_code=error.status)
                return JSONResponse(body, headers={"Cache-Control": "no-store"})
            return await emulator.faults.run("credly.oauth.token", respond)
        return endpoint

    return [Route(WEB_PATH, endpoint_for("web"), methods=["POST"]),
            Route(API_PATH, endpoint_for("api"), methods=["POST"])]
