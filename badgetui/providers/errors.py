"""Provider failures, classified so callers decide by class alone (providers.md §3).

- `RetryableError`: connection error, timeout, 429, 5xx; try again later (honour `retry_after`).
- `AuthError`: 401, 403; the key is wrong, expired or lacks permission; retrying cannot help.
- `PermanentError`: any other 4xx; `DuplicateError` marks the provider's "already issued" answer,
  after which the caller looks the badge up instead of issuing again.

`message` is the provider's own one-line message when it sent one; `str(error)` adds the provider,
the status and a hint. Neither ever contains an API key (callers may show both to users).
"""

from __future__ import annotations

from typing import Any, Literal

Kind = Literal["retryable", "auth", "permanent"]


class ProviderError(Exception):
    """A provider call that did not succeed; see the subclasses for what to do about it."""

    kind: Kind = "permanent"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        provider: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.provider = provider
        self.hint = hint

    def __str__(self) -> str:
        if not self.provider and not self.hint:
            return self.message
        line = f"{self.provider}: " if self.provider else ""
        if self.status is not None:
            line += f"{self.status} "
        line += self.message
        return f"{line} ({self.hint})" if self.hint else line

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, status={self.status!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by the default Exception pickling.
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[ProviderError], message: str, state: dict[str, Any]) -> ProviderError:
    error = cls(message)
    error.__dict__.update(state)
    return error


class RetryableError(ProviderError):
    """Connection error, timeout, 429 or 5xx: the same call may succeed later."""

    kind: Kind = "retryable"


class AuthError(ProviderError):
    """401 or 403: the key is refused; nothing succeeds until it is fixed."""

    kind: Kind = "auth"


class PermanentError(ProviderError):
    """Any other 4xx: the request itself is wrong (unknown id, validation failure)."""

    kind: Kind = "permanent"


class DuplicateError(PermanentError):
    """The provider already holds this badge/credential: look it up and adopt it."""
