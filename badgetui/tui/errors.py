"""One sentence for any failure a worker meets (services already mask keys)."""

from __future__ import annotations


def one_line(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:300]
