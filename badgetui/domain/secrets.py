"""How a secret may be shown anywhere (output, logs, exports): its last 4 characters only."""

from __future__ import annotations


def mask(secret: str | None) -> str:
    if not secret:
        return ""
    return "…" + secret[-4:] if len(secret) > 4 else "…" + "*" * len(secret)
