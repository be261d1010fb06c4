"""The console shell: tabs by key, status line, palette, and never blocking during a sync."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import DataTable, TabbedContent

from badgetui.sandbox import Emulator
from badgetui.services import Services, database_label
from badgetui.settings import Settings
from badgetui.tui.app import StatusLine, make_app
from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed
from tests.helpers import DEMO, config_text, course_event, jsonl, requirement, rule, template_config


async def test_single_keys_switch_tabs(services):
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "templates"
        for key, tab in (("p", "providers"), ("g", "progress"), ("b", "badges"),
                         ("e", "events"), ("t", "templates"), ("3", "progress")):
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == tab


async def test_status_line_shows_queue_failures_and_database(services, synced, db_url):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO))])))
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO), course_event("bob", DEMO)), "t")
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(160, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = str(app.query_one(StatusLine).render())
        assert "queue 2" in text and database_label(db_url) in text


async def test_progress_and_events_tabs_show_rows(services, synced):
    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO))])))
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO), course_event("bob", DEMO)), "t")
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#progress-pane").query_one(DataTable)
        assert table.row_count == 2
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.query_one("#events-pane").query_one(DataTable).row_count == 2


async def test_key_presses_are_handled_while_a_slow_sync_runs(new_database, clock):
    seed = sandbox_seed()
    seed["credly"]["organizations"][0]["badge_templates"] = credly_templates(20000)
    emulator = Emulator(seed, rng_seed=4)
    emulator.set_faults({"*": {"latency_ms": 200}})
    services = Services.open(
        Settings(db=new_database("slow"), credly_api_url="http://sandbox/credly/v1/",
                 accredible_api_url="http://sandbox/accredible/v1/", provider_timeout=10),
        clock=clock, transport=emulator.transport())
    await asyncio.to_thread(lambda: None)
    await services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key")
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        await pilot.pause()
        started = time.monotonic()
        app.query_one("#providers-pane").start_sync(None)
        await pilot.pause(0.3)
        tabs = app.query_one(TabbedContent)
        for key, tab in (("t", "templates"), ("b", "badges"), ("p", "providers")):
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == tab
        switched = time.monotonic() - started
        assert any(w.group == "sync" and not w.is_finished for w in app.workers)
        await app.workers.wait_for_complete()
        total = time.monotonic() - started
    assert switched < total
    assert len(services.templates.list()) == 20000
    services.close()


async def test_palette_opens_a_template_by_name_and_jumps_to_a_learner(services, synced):
    from badgetui.tui.screens.template import TemplateScreen

    synced("t1")
    services.config.import_text(config_text(template_config("t1", [
        requirement("demo", rule("course.course_key", DEMO))])))
    services.intake.ingest_lines(jsonl(course_event("ann", DEMO), course_event("bob", DEMO)), "t")
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Template t1")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, TemplateScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"bob")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "progress"
        table = app.query_one("#progress-pane").query_one(DataTable)
        assert table.row_count == 1


async def test_light_and_dark_themes_render(services, synced):
    synced("t1")
    app = make_app(services.settings, services=services)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        shots = {}
        for theme in ("textual-light", "textual-dark"):
            app.theme = theme
            await pilot.pause()
            shots[theme] = app.export_screenshot().replace("&#160;", " ")
            assert "Template t1" in shots[theme]
        assert shots["textual-light"] != shots["textual-dark"]
