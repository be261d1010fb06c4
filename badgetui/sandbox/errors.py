"""The one exception provider operations raise; routes turn it into the provider's error answer."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal with the exact status, body and headers the real provider would send.

    `body` is JSON-serialisable, or a `str` for plain-text answers (Accredible's 401).
    """

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def credly_error(status: int, message: str) -> ApiError:
    """Credly's error shape: `{"data": {"message": ...}}`."""
    return ApiError(status, {"data": {"message": message}})


def credly_unauthorized() -> ApiError:
    """Missing, unknown, expired or foreign token."""
    return credly_error(401, "Unauthorized")


def credly_not_found() -> ApiError:
    """Unknown organization, template, badge or event (or one of another organization)."""
    return credly_error(404, "Not found")


def credly_validation(message: str) -> ApiError:
    """Credly's 422: `Validation failed: <message>`."""
    return credly_error(422, f"Validation failed: {message}")


ACCREDIBLE_ACCESS_DENIED = "HTTP Token: Access denied."


def accredible_error(status: int, errors: Any) -> ApiError:
    """Accredible's most common error shape: `{"errors": <string or field -> [messages]>}`."""
    return ApiError(status, {"errors": errors})


def accredible_unauthorized() -> ApiError:
    """Accredible's Rails token refusal: plain text plus the `WWW-Authenticate` challenge."""
    return ApiError(401, ACCREDIBLE_ACCESS_DENIED,
                    {"WWW-Authenticate": 'Token realm="Application"'})


def accredible_not_found() -> ApiError:
    """Accredible's answer for an unknown resource or another account's resource."""
    return accredible_error(404, "Doesn't exist")
