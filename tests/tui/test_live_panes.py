"""Progress, Badges and Events panes: filters, detail, live updates, badge actions at the
emulator, and ingesting a file from the Events pane."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Checkbox, DataTable, Input, ProgressBar, Select, Static

from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.store.models import Badge, DeliveryJob, IntakeRecord, Progress, Template
from badgetui.tui.app import BadgeApp, make_app
from badgetui.tui.screens.badges import RevokeScreen, WhyScreen
from badgetui.tui.screens.events import IngestScreen
from badgetui.tui.screens.progress import ProgressDetailScreen
from tests.conftest import CREDLY_ORG, credly_templates
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

TPL1, TPL2 = (t["id"] for t in credly_templates(2))
SIZE = (160, 40)


async def configure(svc: Services) -> dict[str, int]:
    """Two Credly templates: T1 needs DEMO (group A) and OTHER (group B); T2 needs DEMO."""
    account = await svc.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key")
    await svc.sync.sync(account.id)
    svc.config.import_text(config_text(
        template_config(TPL1, [
            requirement("demo", rule("is_passing", "true"), rule("course.course_key", DEMO),
                        group="A"),
            requirement("other", rule("is_passing", "true"), rule("course.course_key", OTHER),
                        group="B"),
        ]),
        template_config(TPL2, [
            requirement("demo2", rule("is_passing", "true"), rule("course.course_key", DEMO))],
            [penalty(["demo2"], rule("is_passing", "false"), rule("course.course_key", DEMO))]),
    ))
    return {ext: tid for tid, ext in Template.select(Template.id, Template.external_id).tuples()}


def app_for(svc: Services) -> BadgeApp:
    app = make_app(svc.settings, services=svc)
    app.animation_level = "none"
    app.live_refresh = None  # the tests trigger refreshes themselves
    return app


async def settle(pilot: Any) -> None:
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def table(app: BadgeApp, pane: str) -> DataTable[Any]:
    return app.query_one(f"#{pane}-pane").query_one(DataTable)


def column(grid: DataTable[Any], index: int) -> list[str]:
    return [str(grid.get_row_at(r)[index]) for r in range(grid.row_count)]


async def test_progress_filters_narrow_rows_and_detail_names_the_events(psvc):
    ids = await configure(psvc)
    psvc.intake.ingest_lines(jsonl(
        course_event("ann", DEMO, event_id="ann-demo"),
        course_event("ann", OTHER, event_id="ann-other"),
        course_event("bob", DEMO, event_id="bob-demo"),
        course_event("bea", OTHER, event_id="bea-other"),
    ), "t")
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g")
        await settle(pilot)
        grid = table(app, "progress")
        assert grid.row_count == 5  # ann×2, bob×2, bea×1
        pane = app.query_one("#progress-pane")
        assert "of 5" in str(pane.query_one(".pager", Static).render())

        pane.query_one("#template", Select).value = ids[TPL1]
        await settle(pilot)
        assert sorted(column(grid, 0)) == ["ann", "bea", "bob"]

        pane.query_one("#complete", Select).value = True
        await settle(pilot)
        assert column(grid, 0) == ["ann"]

        pane.query_one("#complete", Select).value = False
        pane.query_one("#text", Input).value = "b"
        await settle(pilot)
        assert sorted(column(grid, 0)) == ["bea", "bob"]
        assert "of 2" in str(pane.query_one(".pager", Static).render())

        pane.query_one("#complete", Select).clear()
        pane.query_one("#text", Input).value = "ann"
        await settle(pilot)
        assert column(grid, 0) == ["ann"]
        grid.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ProgressDetailScreen)
        detail = app.screen.query_one("#detail-requirements", DataTable)
        events = column(detail, 4)
        assert events == ["ann-demo", "ann-other"]
        assert "groups 2/2 fulfilled, complete" in str(
            app.screen.query_one("#detail-summary", Static).render())


async def test_live_update_changes_a_visible_row_and_the_cursor_stays(psvc, db_url, clock):
    await configure(psvc)
    psvc.intake.ingest_lines(jsonl(*[course_event(f"l{n:02d}", DEMO) for n in range(10)]), "t")
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g")
        await settle(pilot)
        grid = table(app, "progress")
        assert grid.row_count == 20  # every learner: T1 half done, T2 complete
        halves = [r for r in range(20) if grid.get_row_at(r)[3] == "1/2"]
        row = halves[3]
        grid.move_cursor(row=row)
        before_key = grid.coordinate_to_cell_key(grid.cursor_coordinate).row_key.value
        learner = grid.get_row_at(row)[0]

        # Another process (its own connection) records an event for that learner.
        other = Services.open(Settings(db=db_url), clock=clock)
        try:
            await asyncio.to_thread(other.intake.ingest_lines,
                                    jsonl(course_event(learner, OTHER)), "other")
        finally:
            other.close()
        app._live_tick()
        await settle(pilot)
        assert grid.row_count == 20
        assert grid.cursor_row == row
        assert grid.coordinate_to_cell_key(grid.cursor_coordinate).row_key.value == before_key
        after = list(grid.get_row_at(row))
        assert after[0] == learner and after[3] == "2/2" and after[4] == "held"
        assert "demo, other" in after[5]


async def test_retry_requeues_and_the_emulator_then_has_the_badge(psvc, emulator):
    await configure(psvc)
    emulator.set_faults({"credly.issue": {"fail_next": [400]}})
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    report = await psvc.delivery.run()
    assert report.counts["failed"] == 1
    assert emulator.state()["credly"]["badges"] == []
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        pane = app.query_one("#badges-pane")
        pane.query_one("#failed-only", Checkbox).value = True
        await settle(pilot)
        assert table(app, "badges").row_count == 1
        await pilot.press("r")
        await settle(pilot)
        await settle(pilot)
    assert DeliveryJob.get(DeliveryJob.kind == "issue").state == "done"
    [issued] = emulator.state()["credly"]["badges"]
    assert issued["recipient_email"] == "ann@example.org" or issued.get("issuer_earner_id")
    badge = Badge.get()
    assert badge.external_id == issued["id"]


async def test_revoke_with_a_reason_reaches_the_emulator(psvc, emulator):
    await configure(psvc)
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    await psvc.delivery.run()
    badge = Badge.get(Badge.template == Template.get(Template.external_id == TPL2))
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        grid = table(app, "badges")
        keys = [grid.coordinate_to_cell_key((r, 0)).row_key.value for r in range(grid.row_count)]
        grid.move_cursor(row=keys.index(str(badge.id)))
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, RevokeScreen)
        await pilot.press("enter")  # no reason: nothing happens
        assert isinstance(app.screen, RevokeScreen)
        await pilot.press(*"issued in error")
        await pilot.press("enter")
        await settle(pilot)
        await settle(pilot)
    badge = Badge.get_by_id(badge.id)
    assert badge.status == "revoked" and "issued in error" in badge.revoke_reason
    remote = {b["id"]: b for b in emulator.state()["credly"]["badges"]}
    assert remote[badge.external_id]["state"] == "revoked"
    progress = Progress.get(Progress.template == badge.template)
    assert progress.complete is False and progress.badge is None


async def test_resend_looks_the_badge_up_and_never_issues_twice(psvc, emulator):
    await configure(psvc)
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    await psvc.delivery.run()
    assert len(emulator.state()["credly"]["badges"]) == 1
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await settle(pilot)
    jobs = list(DeliveryJob.select().where(DeliveryJob.kind == "issue")
                .order_by(DeliveryJob.id))
    assert [j.state for j in jobs] == ["done", "done", "done"][: len(jobs)]
    assert len(jobs) == 2
    assert len(emulator.state()["credly"]["badges"]) == 1


async def test_why_shows_the_fulfilling_event_ids(psvc):
    await configure(psvc)
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO, event_id="pass-1")), "t")
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, WhyScreen)
        assert "pass-1" in str(app.screen.query_one("#why", Static).render())


async def test_events_filter_by_outcome_and_learner(psvc):
    await configure(psvc)
    lines = jsonl(course_event("ann", DEMO, event_id="e1"), course_event("bob", DEMO),
                  course_event("ann", DEMO, event_id="e1"))
    psvc.intake.ingest_lines([*lines, "{not json"], "t")
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await settle(pilot)
        grid = table(app, "events")
        assert grid.row_count == 4
        pane = app.query_one("#events-pane")
        pane.query_one("#outcome", Select).value = "duplicate"
        await settle(pilot)
        assert column(grid, 1) == ["duplicate"] and column(grid, 3) == ["ann"]
        pane.query_one("#outcome", Select).value = "rejected"
        await settle(pilot)
        assert column(grid, 1) == ["rejected"] and column(grid, 4) == ["t:4"]
        pane.query_one("#outcome", Select).clear()
        pane.query_one("#text", Input).value = "bo"
        await settle(pilot)
        assert column(grid, 3) == ["bob"]


@pytest.mark.parametrize("deliver", [True, False])
async def test_ingest_a_file_from_the_events_pane(psvc, emulator, tmp_path: Path, deliver):
    await configure(psvc)
    events = [course_event(f"u{n:03d}", DEMO) for n in range(120)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([*jsonl(*events[:60]), "{broken", *jsonl(*events[60:])]) + "\n")
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, IngestScreen)
        if not deliver:
            app.screen.query_one("#deliver", Checkbox).value = False
        app.screen.query_one("#path", Input).value = str(path)
        await pilot.press("enter")
        await settle(pilot)
        await settle(pilot)
        bar = app.screen.query_one(ProgressBar)
        assert bar.total == 121 and bar.progress == 121
        result = str(app.screen.query_one("#ingest-result", Static).render())
        assert "processed 120" in result and "line 61: rejected" in result
        await pilot.press("escape")
        await settle(pilot)
        assert table(app, "events").row_count == 121
    assert IntakeRecord.select().where(IntakeRecord.outcome == "rejected").get().line == 61
    remote = emulator.state()["credly"]["badges"]
    assert len(remote) == (120 if deliver else 0)


async def test_ingest_refuses_a_missing_file(psvc, tmp_path: Path):
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.press("i")
        await settle(pilot)
        app.screen.query_one("#path", Input).value = str(tmp_path / "nope.jsonl")
        await pilot.press("enter")
        await settle(pilot)
        assert "no such file" in str(app.screen.query_one("#ingest-result", Static).render())
    assert IntakeRecord.select().count() == 0


async def test_enter_on_an_event_shows_it_in_full(psvc):
    await configure(psvc)
    psvc.intake.ingest_lines([*jsonl(course_event("ann", DEMO, event_id="e-full")), "{nope"], "t")
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await settle(pilot)
        grid = table(app, "events")
        assert column(grid, 6) == ["", "e-full"]  # newest first
        grid.focus()
        await pilot.press("down", "enter")
        await settle(pilot)
        fields = str(app.screen.query_one("#event-fields", Static).render())
        assert "processed" in fields and "e-full" in fields and "fulfilled" in fields
        assert '"username": "ann"' in str(app.screen.query_one("#event-payload", Static).render())
        await pilot.press("escape", "up", "enter")
        await settle(pilot)
        fields = str(app.screen.query_one("#event-fields", Static).render())
        assert "rejected" in fields and "line 2" in fields
        assert "{nope" in str(app.screen.query_one("#event-payload", Static).render())


async def test_quitting_stops_a_delivery_in_flight(psvc, emulator):
    await configure(psvc)
    emulator.set_faults({"credly.issue": {"latency_ms": 20_000}})
    psvc.intake.ingest_lines(jsonl(course_event("ann", DEMO)), "t")
    app = app_for(psvc)
    loop = asyncio.get_running_loop()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver()
        for _ in range(100):  # until the issue call is at the (slow) provider
            await pilot.pause(0.05)
            if DeliveryJob.select().where(DeliveryJob.state == "running").exists():
                break
        assert DeliveryJob.get(DeliveryJob.kind == "issue").state == "running"
        started = loop.time()
        app.exit()
    # The delivery thread has returned (the process can end), not after the provider's 20 s.
    while app._delivery_halt is not None and loop.time() - started < 10:
        await asyncio.sleep(0.05)
    assert app._delivery_halt is None and loop.time() - started < 5


async def test_badges_show_and_filter_the_provider_state(psvc, emulator):
    """pending, accepted and rejected at Credly (recorded by reconcile), shown per row and
    filtered by the provider-state select."""
    await configure(psvc)
    psvc.intake.ingest_lines(jsonl(*(course_event(u, DEMO) for u in ("ann", "bob", "cat"))),
                             "t")
    await psvc.delivery.run()
    by_user = {b.learner.username: b for b in Badge.select()
               if b.template.external_id == TPL2}
    emulator.set_credly_badge_state(by_user["ann"].external_id, "accepted")
    emulator.set_credly_badge_state(by_user["bob"].external_id, "rejected")
    await psvc.reconcile.reconcile()
    app = app_for(psvc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        grid = table(app, "badges")
        states = dict(zip(column(grid, 0), column(grid, 3), strict=True))
        assert {states[u] for u in ("ann", "bob", "cat")} == {"accepted", "rejected", "pending"}
        assert states["ann"] == "accepted" and states["bob"] == "rejected"
        pane = app.query_one("#badges-pane")
        for wanted, users in (("rejected", ["bob"]), ("accepted", ["ann"]),
                              ("pending", ["cat"])):
            pane.query_one("#provider-state", Select).value = wanted
            await settle(pilot)
            assert column(grid, 0) == users, wanted
