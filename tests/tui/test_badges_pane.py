"""Badges pane: why a badge was awarded, and retrying a failed delivery."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from badgetui.store.models import DeliveryJob
from badgetui.tui.app import make_app
from badgetui.tui.screens.badges import WhyScreen
from tests.helpers import (
    DEMO,
    config_text,
    course_event,
    jsonl,
    requirement,
    rule,
    template_config,
)


async def test_why_shows_the_fulfilling_events_and_retry_requeues(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO))])))
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO, event_id="pass-1")), "t")
    DeliveryJob.update(state="failed", last_error="issue failed: nope").execute()
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("b")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.query_one("#badges-pane").query_one(DataTable).row_count == 1
        await pilot.press("w")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, WhyScreen)
        text = str(app.screen.query_one("#why", Static).render())
        assert "pass-1" in text and "course.course_key eq" in text
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert DeliveryJob.get().state == "queued"
