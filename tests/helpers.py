"""Builders for events and configurations used across the tests."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING

DEMO = "course-v1:edX+DemoX+Demo_Course"
OTHER = "course-v1:edX+DemoX+OTHER_Course"
_ids = itertools.count(1)
_T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def user(username: str, uid: int = 7) -> dict[str, Any]:
    return {"id": uid, "is_active": True,
            "pii": {"username": username, "email": f"{username}@example.org",
                    "name": username.title()}}


def course_event(username: str, course_key: str, passing: bool = True, *,
                 event_id: str | None = None, seconds: int | None = None,
                 uid: int = 7) -> dict[str, Any]:
    n = next(_ids)
    return {
        "id": event_id or f"evt-{n}",
        "event_type": COURSE_PASSING,
        "time": (_T0 + timedelta(seconds=n if seconds is None else seconds)).isoformat(),
        "data": {"course_passing_status": {
            "is_passing": passing,
            "course": {"course_key": course_key, "display_name": "", "start": None, "end": None},
            "user": user(username, uid)}},
    }


def ccx_event(username: str, ccx_key: str, master_key: str, passing: bool = True, *,
              event_id: str | None = None) -> dict[str, Any]:
    n = next(_ids)
    return {
        "id": event_id or f"evt-{n}",
        "event_type": CCX_COURSE_PASSING,
        "time": (_T0 + timedelta(seconds=n)).isoformat(),
        "data": {"course_passing_status": {
            "is_passing": passing,
            "user": user(username),
            "course": {"ccx_course_key": ccx_key, "master_course_key": master_key,
                       "display_name": "", "coach_email": "", "start": None, "end": None,
                       "max_students_allowed": None}}},
    }


def rule(path: str, value: str, op: str = "eq") -> dict[str, str]:
    return {"path": path, "op": op, "value": value}


def requirement(rid: str, *rules: dict[str, str], group: str | None = None,
                event_type: str = COURSE_PASSING, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "event_type": event_type, "rules": list(rules)}
    if group:
        out["group"] = group
    if description:
        out["description"] = description
    return out


def penalty(requirements: list[str], *rules: dict[str, str],
            event_type: str = COURSE_PASSING, description: str = "") -> dict[str, Any]:
    return {"event_type": event_type, "requirements": requirements, "rules": list(rules),
            "description": description}


def template_config(external_id: str, requirements: list[dict[str, Any]],
                    penalties: list[dict[str, Any]] | None = None, *, active: bool = True,
                    provider: str = "credly") -> dict[str, Any]:
    return {"provider": provider, "external_id": external_id, "active": active,
            "requirements": requirements, "penalties": penalties or []}


def config_text(*templates: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "templates": list(templates)})


def jsonl(*events: dict[str, Any]) -> list[str]:
    return [json.dumps(e) for e in events]


def table_snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the bound database, for "nothing changed" checks."""
    from badgetui.store.models import MODELS

    return {
        model._meta.table_name: list(
            model.select().order_by(model._meta.primary_key).tuples()
        )
        for model in MODELS
    }
