"""A tour of the console over the reproducible demo world: every screen, reached like a user.

Each stop is a name (the picture's file name) and the keys that get there from a fresh app.
`scripts/screenshots.py` saves every stop as SVG; the live-pane snapshot tests replay some of
them, so the README pictures and the snapshots show the same screens.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Select, TextArea

from badgetui.demo import course_key
from badgetui.demo_world import DemoWorld, ingest_file
from badgetui.sandbox import demo_seed
from badgetui.services.queries import list_badges
from badgetui.tui.app import BadgeApp, make_app
from badgetui.tui.messages import OpenTemplate
from badgetui.tui.screens.rule_tester import RECENT

SIZE = (120, 36)
#: The template the editor, rule tester and progress stops show: two requirement groups.
TEMPLATE = "Machine Learning Basics"
#: What the ingest stop reads, relative to the world's directory (the dialog shows the path).
INGEST_FILE = "new-learners.jsonl"

Stop = Callable[[Pilot[None], DemoWorld], Awaitable[None]]


def tour_app(world: DemoWorld) -> BadgeApp:
    """The console on the world, without anything that moves by itself."""
    app = make_app(world.settings, services=world.services)
    app.animation_level = "none"
    app.live_refresh = None
    return app


async def settle(pilot: Pilot[None]) -> None:
    """Until every worker is done and every message handled (workers start workers)."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def still(pilot: Pilot[None]) -> None:
    """No blinking cursor in a picture."""
    for widget in pilot.app.screen.query("Input, TextArea"):
        if isinstance(widget, Input | TextArea):
            widget.cursor_blink = False


def _template_id(world: DemoWorld, name: str = TEMPLATE) -> int:
    return next(t.id for t in world.services.templates.list() if t.name == name)


def _pane_table(pilot: Pilot[None], tab: str) -> DataTable[Any]:
    return pilot.app.query_one(f"#{tab}-pane").query_one(DataTable)


async def _to_row(pilot: Pilot[None], table: DataTable[Any], key: int | str) -> None:
    table.focus()
    table.move_cursor(row=table.get_row_index(str(key)), animate=False)
    await settle(pilot)


# -- providers ------------------------------------------------------------------------------
async def providers(pilot: Pilot[None], world: DemoWorld) -> None:
    """The Credly organization selected: its key's age and expiry in the detail below."""
    await pilot.press("p")
    await settle(pilot)
    await _to_account(pilot, "Example Academy")


async def _to_account(pilot: Pilot[None], name: str) -> None:
    table = pilot.app.query_one("#accounts", DataTable)
    names = [str(table.get_row_at(r)[1]) for r in range(table.row_count)]
    table.move_cursor(row=names.index(name), animate=False)
    await settle(pilot)


async def account_form(pilot: Pilot[None], world: DemoWorld) -> None:
    await providers(pilot, world)
    await pilot.press("a")
    await settle(pilot)


async def sync_confirmation(pilot: Pilot[None], world: DemoWorld) -> None:
    """Two groups gone from Example Accredible: its sync asks before removing them. This
    resets the emulator (its badges too): take this stop last."""
    seed = copy.deepcopy(demo_seed())
    account = seed["accredible"]["accounts"][0]
    account["groups"] = [g for g in account["groups"] if g["id"] not in (9004, 9005)]
    world.emulator.reset(seed)
    await providers(pilot, world)
    await _to_account(pilot, "Example Accredible")
    await pilot.press("s")
    await settle(pilot)


# -- templates ------------------------------------------------------------------------------
async def templates(pilot: Pilot[None], world: DemoWorld) -> None:
    await pilot.press("t")
    await settle(pilot)
    await _to_row(pilot, _pane_table(pilot, "templates"), _template_id(world))


async def template_editor(pilot: Pilot[None], world: DemoWorld) -> None:
    await settle(pilot)
    pilot.app.post_message(OpenTemplate(_template_id(world)))
    await settle(pilot)


async def requirement_form(pilot: Pilot[None], world: DemoWorld) -> None:
    await template_editor(pilot, world)
    await pilot.press("e")
    await settle(pilot)


async def rule_tester(pilot: Pilot[None], world: DemoWorld) -> None:
    await template_editor(pilot, world)
    await pilot.press("t")
    await settle(pilot)
    await pilot.press("ctrl+l")
    # Down the recent events to the newest passing one of this template's course.
    recent = world.services.editor.recent_events(RECENT)
    wanted = next(n for n, e in enumerate(recent) if _passes(e["event"], "ML"))
    await pilot.press(*["down"] * wanted, "enter")
    await settle(pilot)
    pilot.app.screen.query_one("#verdicts", DataTable).focus()
    await settle(pilot)


def _passes(event: dict[str, Any], course: str) -> bool:
    [record] = event["data"].values()
    keys = record.get("course") or {}
    return record.get("is_passing") is True and course_key(course) in (
        keys.get("course_key"), keys.get("master_course_key"))


# -- progress -------------------------------------------------------------------------------
async def progress(pilot: Pilot[None], world: DemoWorld) -> None:
    await pilot.press("g")
    await settle(pilot)


async def progress_filtered(pilot: Pilot[None], world: DemoWorld) -> None:
    await progress(pilot, world)
    pane = pilot.app.query_one("#progress-pane")
    pane.query_one("#template", Select).value = _template_id(world)
    pane.query_one("#complete", Select).value = False
    await settle(pilot)
    _pane_table(pilot, "progress").focus()
    await settle(pilot)


async def progress_detail(pilot: Pilot[None], world: DemoWorld) -> None:
    await progress_filtered(pilot, world)
    await pilot.press("enter")
    await settle(pilot)


# -- badges ---------------------------------------------------------------------------------
async def badges(pilot: Pilot[None], world: DemoWorld) -> None:
    await pilot.press("b")
    await settle(pilot)


async def badges_failed(pilot: Pilot[None], world: DemoWorld) -> None:
    await badges(pilot, world)
    pilot.app.query_one("#badges-pane").query_one("#failed-only", Checkbox).value = True
    await settle(pilot)
    await _scroll_right(pilot, "badges")  # to the whole last error


async def why(pilot: Pilot[None], world: DemoWorld) -> None:
    """The badge a penalty revoked: award, requirements and the revoking event."""
    await badges(pilot, world)
    penalised = next(b for b in list_badges(status="revoked", limit=50)
                     if b.revoke_reason.startswith("penalty"))
    await _to_row(pilot, _pane_table(pilot, "badges"), penalised.id)
    await pilot.press("w")
    await settle(pilot)


async def revoke(pilot: Pilot[None], world: DemoWorld) -> None:
    """The revoke dialog with its reason typed (not sent: the dialog stays open)."""
    await badges(pilot, world)
    [held] = list_badges(status="awarded", provider_state="pending", limit=1)
    await _to_row(pilot, _pane_table(pilot, "badges"), held.id)
    await pilot.press("x")
    await settle(pilot)
    await pilot.press(*"left the programme")
    await settle(pilot)


# -- events ---------------------------------------------------------------------------------
async def events(pilot: Pilot[None], world: DemoWorld) -> None:
    await pilot.press("e")
    await settle(pilot)


async def events_filtered(pilot: Pilot[None], world: DemoWorld) -> None:
    await events(pilot, world)
    pilot.app.query_one("#events-pane").query_one("#outcome", Select).value = "rejected"
    await settle(pilot)
    await _scroll_right(pilot, "events")


async def _scroll_right(pilot: Pilot[None], tab: str) -> None:
    """All the way right, as the arrow keys would: the reasons are the last column."""
    table = _pane_table(pilot, tab)
    table.focus()
    await settle(pilot)
    table.scroll_to(x=table.max_scroll_x, animate=False)
    await settle(pilot)


async def ingest(pilot: Pilot[None], world: DemoWorld) -> None:
    """A small file ingested (and delivered): the full bar, the counts, the broken line.
    Writes to the world: take it after the stops that only look."""
    ingest_file(world.work / INGEST_FILE)
    await events(pilot, world)
    await pilot.press("i")
    await settle(pilot)
    await pilot.press(*INGEST_FILE, "enter")
    await settle(pilot)
    await settle(pilot)
    # The events table behind the dialog took the new rows while the dialog was open; lay it
    # out again now, so its column widths in the picture never depend on paint timing.
    table = pilot.app.screen_stack[0].query_one("#events-pane DataTable")
    table.refresh(layout=True)
    await settle(pilot)
    await pilot.pause(0.1)


# -- everywhere -----------------------------------------------------------------------------
async def command_palette(pilot: Pilot[None], world: DemoWorld) -> None:
    await settle(pilot)
    await pilot.press("ctrl+p")
    await settle(pilot)
    await pilot.press(*"open")  # hits of one provider only: their order never varies
    await settle(pilot)


#: In an order that keeps the world as the looking stops expect it: writers last.
STOPS: dict[str, Stop] = {
    "providers": providers,
    "account-form": account_form,
    "templates": templates,
    "template-editor": template_editor,
    "requirement-form": requirement_form,
    "rule-tester": rule_tester,
    "progress": progress,
    "progress-filtered": progress_filtered,
    "progress-detail": progress_detail,
    "badges": badges,
    "badges-failed": badges_failed,
    "why": why,
    "revoke": revoke,
    "events": events,
    "events-filtered": events_filtered,
    "command-palette": command_palette,
    "ingest": ingest,
    "sync-confirmation": sync_confirmation,
}


async def arrive(pilot: Pilot[None], world: DemoWorld, name: str) -> None:
    """Go to stop `name` on a fresh app and hold still for the picture."""
    await settle(pilot)
    await STOPS[name](pilot, world)
    still(pilot)
    await settle(pilot)
