"""The emulator's notion of time: an injectable clock plus an offset tests can advance."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta


def _system_now() -> datetime:
    return datetime.now(UTC)


class SandboxClock:
    """Injected clock + advanced offset, so key expiry and dates can be aged without waiting."""

    def __init__(self, base: Callable[[], datetime] | None = None) -> None:
        self._base = base or _system_now
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current aware UTC time as the emulator sees it."""
        current = self._base()
        if current.tzinfo is None:
            current = current.replace(tzinfo=UTC)
        with self._lock:
            return current.astimezone(UTC) + self._offset

    def today(self) -> date:
        """The current UTC date (Accredible dates are plain dates)."""
        return self.now().date()

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward (or backward with a negative value)."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def rewind(self) -> None:
        """Forget every advance (used by reset)."""
        with self._lock:
            self._offset = timedelta()


def iso_ms(moment: datetime | None) -> str | None:
    """Credly's response time format: ISO-8601 UTC with milliseconds and a `Z`."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_instant(value: str) -> datetime:
    """Parse a Credly request time: `%Y-%m-%d %H:%M:%S %z`, ISO-8601 or a bare date.

    Raises ValueError on anything else; naive values are taken as UTC.
    """
    text = value.strip()
    try:
        parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_accredible_date(value: str) -> date:
    """Parse an Accredible date: `YYYY-MM-DD`, `DD/MM/YYYY` or `YYYY-MM-DD HH:MM:SS ±ZZZZ`.

    A timestamp is cut to its own (local) date, as Accredible does; ValueError otherwise.
    """
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").date()
    except ValueError:
        return datetime.fromisoformat(text).date()
