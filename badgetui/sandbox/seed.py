"""Seeds: reading one from a file, and the demo seed used when none is given."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

DEMO_CREDLY_ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"
DEMO_CREDLY_KEY = "sandbox-credly-key"
DEMO_ACCREDIBLE_KEY = "sandbox-accredible-key"
DEMO_ACCREDIBLE_KEY_2 = "sandbox-accredible-key-2"

_ACTIVE = (
    ("Python Foundations", "Writes, runs and debugs small Python programs."),
    ("Data Analysis with Pandas", "Cleans, joins and summarises tabular data."),
    ("Machine Learning Basics", "Trains and evaluates supervised models."),
    ("Web Development Essentials", "Builds accessible pages with HTML, CSS and JavaScript."),
    ("Cloud Computing Fundamentals", "Deploys and operates services on a public cloud."),
    ("Cybersecurity Awareness", "Recognises and reports common attacks."),
    ("Project Management Skills", "Plans, tracks and closes a small project."),
    ("Agile Team Member", "Works in sprints with a backlog and retrospectives."),
    ("SQL for Analysts", "Queries relational data with joins and aggregates."),
    ("UX Design Principles", "Designs and tests interfaces with real users."),
    ("Technical Writing", "Writes clear documentation for a technical audience."),
    ("Open edX Course Author", "Builds and publishes a course on Open edX."),
)
_ARCHIVED = ("Legacy Flash Animation", "Retired: the course closed in 2020.")


def _template_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://badgetui.example/demo/{name}"))


def _template(name: str, description: str, state: str) -> dict[str, Any]:
    template_id = _template_id(name)
    return {"id": template_id, "name": name, "state": state, "description": description,
            "image_url": f"https://images.credly.com/size/340x340/images/{template_id}/image.png"}


def demo_seed() -> dict[str, Any]:
    """A Credly organization (12 active templates, 1 archived) and two Accredible accounts.

    The second Accredible account repeats group id 9001 (and design id 77) of the first, the
    case that breaks integrations keyed by the provider's id alone.
    """
    templates = [_template(n, d, "active") for n, d in _ACTIVE]
    templates.append(_template(*_ARCHIVED, "archived"))
    design = "https://images.accredible.example/designs/{}.png"
    return {
        "credly": {"organizations": [{
            "id": DEMO_CREDLY_ORG, "name": "Example Academy", "api_key": DEMO_CREDLY_KEY,
            "badge_templates": templates}]},
        "accredible": {"accounts": [
            {"name": "Example Accredible", "api_key": DEMO_ACCREDIBLE_KEY,
             "groups": [
                 {"id": 9001, "name": "intro-data", "course_name": "Introduction to Data",
                  "course_description": "Data literacy for everyone.", "primary_design_id": 77},
                 {"id": 9002, "name": "python-cert", "course_name": "Python Certificate",
                  "course_description": "A certificate in Python programming.",
                  "primary_design_id": None, "badge_design_id": 78},
                 {"id": 9003, "name": "leadership", "course_name": "Leadership Essentials",
                  "course_description": "Leading small teams.", "primary_design_id": None,
                  "certificate_design_id": 79},
                 {"id": 9004, "name": "attendance", "course_name": "Workshop Attendance",
                  "course_description": "Attended a live workshop.", "primary_design_id": 77,
                  "allow_duplicate_credentials": True},
                 {"id": 9005, "name": "no-design", "course_name": "Community Contributor",
                  "course_description": "Helped other learners in the forums.",
                  "primary_design_id": None},
             ],
             "designs": [{"id": i, "rasterized_content_url": design.format(i)}
                         for i in (77, 78, 79)]},
            {"name": "Partner Accredible", "api_key": DEMO_ACCREDIBLE_KEY_2,
             "groups": [
                 {"id": 9001, "name": "partner-onboarding", "course_name": "Partner Onboarding",
                  "course_description": "Onboarding for partner staff.", "primary_design_id": 77},
                 {"id": 9101, "name": "partner-sales", "course_name": "Partner Sales",
                  "course_description": "Selling the partner programme.",
                  "primary_design_id": 77},
             ],
             "designs": [{"id": 77, "rasterized_content_url": design.format("partner-77")}]},
        ]},
    }


def load_seed(path: str | Path) -> dict[str, Any]:
    """Read a seed file (formats.md "Provider emulator seed"); ValueError when malformed."""
    try:
        seed = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON: {error}") from None
    check_seed(seed)
    return seed


def check_seed(seed: Any) -> None:
    """The structural checks a seed must pass before the emulator is built from it."""
    if not isinstance(seed, dict):
        raise ValueError("seed must be a JSON object")
    problems = []
    for index, org in enumerate((seed.get("credly") or {}).get("organizations", [])):
        if not isinstance(org, dict) or not org.get("id") or not org.get("api_key"):
            problems.append(f"credly.organizations[{index}] needs id and api_key")
    for index, acc in enumerate((seed.get("accredible") or {}).get("accounts", [])):
        if not isinstance(acc, dict) or not acc.get("api_key"):
            problems.append(f"accredible.accounts[{index}] needs api_key")
            continue
        problems += [f"accredible.accounts[{index}].groups[{i}] needs an integer id"
                     for i, g in enumerate(acc.get("groups", []))
                     if not isinstance(g, dict) or not str(g.get("id", "")).isdigit()]
    if problems:
        raise ValueError("; ".join(problems))
