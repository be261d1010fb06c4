"""Fixed data for the Templates pane and template editor tests, seeded through services."""

from __future__ import annotations

from badgetui.services import Services
from badgetui.services.templates import SyncedTemplate
from badgetui.store.models import ProviderAccount, Template
from tests.conftest import CREDLY_ORG
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    jsonl,
    penalty,
    requirement,
    rule,
    template_config,
)

ACCREDIBLE = "Example Accredible"


def seed(services: Services) -> dict[str, int]:
    """Four Credly templates and one Accredible group; returns external id -> template id.

    - `python`: active, requirements `demo` and `other` (both group A), a penalty on both
    - `data`: inactive, no requirements (its name has brackets: not markup)
    - `retired`: stale (no longer returned by Credly)
    - `draft`: inactive, one requirement, Credly state draft
    - `9001`: Accredible group, inactive, one requirement without rules
    """
    templates = services.templates
    templates.add_account("credly", CREDLY_ORG, "test-key-1234", name="Example Academy")
    credly = ProviderAccount.get(ProviderAccount.identifier == CREDLY_ORG)
    templates.add_account("accredible", ACCREDIBLE, "accredible-key-5678")
    accredible = ProviderAccount.get(ProviderAccount.identifier == ACCREDIBLE)
    current = [SyncedTemplate("python", "Python Basics"),
               SyncedTemplate("data", "Data [Science] Fundamentals"),
               SyncedTemplate("draft", "Draft badge", state="draft")]
    templates.upsert_synced(credly, [*current, SyncedTemplate("retired", "Retired badge")])
    templates.upsert_synced(credly, current)
    templates.upsert_synced(accredible, [SyncedTemplate("9001", "Course completion")])
    services.config.import_text(config_text(
        template_config("python", [
            requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                        group="A", description="Demo course passed"),
            requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                        group="A"),
        ], [penalty(["demo", "other"], rule("is_passing", "false"))]),
        template_config("draft", [requirement("d1", rule("is_passing", "true"))], active=False),
        template_config("9001", [requirement("any", group="A")], active=False,
                        provider="accredible"),
    ))
    return {t.external_id: t.id for t in Template.select()}


def seed_events(services: Services) -> None:
    """Two events in the intake log: ann passes the demo course, bob fails the other one."""
    services.intake.ingest_lines(jsonl(
        course_event("ann", DEMO, event_id="evt-ann", seconds=10),
        course_event("bob", OTHER, passing=False, event_id="evt-bob", seconds=20),
    ), "seed")
