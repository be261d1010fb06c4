"""Evidence sent with an issue, built from the badge's why record (issue 13).

Credly (providers.md §1.8): `evidence[]` items are `UrlEvidence {name, description?, value}` or
`IdEvidence {title, description, id}`. Accredible (§2.4): `evidence_items` on create; its item
shape is thinly documented, so badgetui sends the fields every reading has in common,
`description` and (for a link) `url`. Each fulfilled requirement becomes one item naming the
requirement, its rules (which name the course) and the event that fulfilled it; an operator's
evidence (a URL or text) one more.
"""

from __future__ import annotations

import json
from typing import Any

MAX_ITEMS = 20
MAX_TEXT = 1000


def _why(evidence: str) -> dict[str, Any]:
    try:
        data = json.loads(evidence or "{}")
    except ValueError:
        return {}
    awarded = data.get("awarded") if isinstance(data, dict) else None
    return awarded if isinstance(awarded, dict) else {}


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://")) and " " not in text


def _requirement_text(req: dict[str, Any]) -> tuple[str, str]:
    title = str(req.get("description") or f"Requirement {req.get('id', '')}").strip()
    rules = " and ".join(str(r) for r in req.get("rules") or []) or "any event of its type"
    event = req.get("event_id") or "?"
    when = f" at {req['event_time']}" if req.get("event_time") else ""
    return title[:200], f"{rules}: fulfilled by event {event}{when}"[:MAX_TEXT]


def credly_evidence(evidence: str, badge_uuid: str) -> list[dict[str, Any]]:
    awarded = _why(evidence)
    items: list[dict[str, Any]] = []
    for req in awarded.get("requirements") or []:
        title, text = _requirement_text(req)
        items.append({"type": "IdEvidence", "title": title, "description": text,
                      "id": str(req.get("event_id") or badge_uuid)})
    given = str(awarded.get("evidence") or "").strip()
    if given:
        reason = str(awarded.get("reason") or "")[:MAX_TEXT]
        if _is_url(given):
            items.append({"type": "UrlEvidence", "name": "Evidence", "value": given,
                          **({"description": reason} if reason else {})})
        else:
            items.append({"type": "IdEvidence", "title": "Evidence",
                          "description": given[:MAX_TEXT], "id": badge_uuid})
    return items[:MAX_ITEMS]


def accredible_evidence(evidence: str) -> list[dict[str, Any]]:
    awarded = _why(evidence)
    items: list[dict[str, Any]] = []
    for req in awarded.get("requirements") or []:
        title, text = _requirement_text(req)
        items.append({"description": f"{title}: {text}"[:MAX_TEXT]})
    given = str(awarded.get("evidence") or "").strip()
    if given:
        items.append({"description": "Evidence", "url": given} if _is_url(given)
                     else {"description": given[:MAX_TEXT]})
    return items[:MAX_ITEMS]
