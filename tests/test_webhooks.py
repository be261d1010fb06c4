"""The Credly webhook receiver over real HTTP on loopback, verifying against the emulator."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.services.webhooks import WEBHOOK_PATH, webhook_app
from badgetui.settings import Settings
from badgetui.store.models import Template
from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed
from tests.helpers import DEMO, config_text, requirement, rule, template_config


def serve(app) -> tuple[str, callable]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def live(new_database, clock) -> Iterator[tuple[Emulator, Services, str]]:
    emulator = Emulator(sandbox_seed(), clock=clock, rng_seed=2)
    base, stop_emulator = start_in_thread(emulator)
    services = Services.open(Settings(db=new_database("hooks"),
                                      credly_api_url=f"{base}/credly/v1/",
                                      provider_timeout=3.0), clock=clock)
    receiver, stop_receiver = serve(webhook_app(services.webhooks))
    try:
        yield emulator, services, receiver
    finally:
        stop_receiver()
        stop_emulator()
        services.close()


def post(receiver: str, body: bytes | dict) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(receiver + WEBHOOK_PATH, content=content,
                      headers={"Content-Type": "application/json"}, timeout=10)


def notify(emulator, receiver: str, action: str, template: dict) -> httpx.Response:
    event = emulator.credly_template(CREDLY_ORG, action, template)
    return post(receiver, {"id": event["id"], "organization_id": CREDLY_ORG,
                           "event_type": event["event_type"],
                           "occurred_at": "2026-11-01T12:00:00Z"})


def test_created_changed_archived_deleted(live):
    emulator, services, receiver = live
    asyncio.run(services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key"))
    asyncio.run(services.sync.sync())
    new = {"id": "11111111-2222-4333-8444-555555555555", "name": "Fresh badge",
           "state": "active", "description": "new", "image_url": "https://x/y.png"}
    answer = notify(emulator, receiver, "create", new)
    assert answer.status_code == 200
    row = Template.get(Template.external_id == new["id"])
    assert row.name == "Fresh badge" and not row.is_active

    ext = credly_templates(1)[0]["id"]
    services.config.import_text(config_text(template_config(
        ext, [requirement("demo", rule("course.course_key", DEMO))])))
    assert Template.get(Template.external_id == ext).is_active
    answer = notify(emulator, receiver, "change", {**credly_templates(1)[0], "name": "Renamed"})
    assert answer.status_code == 200
    assert Template.get(Template.external_id == ext).name == "Renamed"
    answer = notify(emulator, receiver, "archive", credly_templates(1)[0])
    assert answer.status_code == 200
    archived = Template.get(Template.external_id == ext)
    assert archived.state == "archived" and not archived.is_active

    answer = notify(emulator, receiver, "delete", new)
    assert answer.status_code == 200
    gone = Template.get(Template.external_id == new["id"])
    assert gone.deleted and not gone.is_active


def test_unknown_organization_forged_malformed_oversized(live):
    _, services, receiver = live
    asyncio.run(services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key"))
    before = [(t.external_id, t.name, t.state) for t in Template.select()]
    unknown = post(receiver, {"id": "x", "organization_id": "9d2f0000-0000-4000-8000-000000000000",
                              "event_type": "badge_template.created"})
    assert unknown.status_code == 404
    forged = post(receiver, {"id": "00000000-dead-4bee-8f00-000000000000",
                             "organization_id": CREDLY_ORG,
                             "event_type": "badge_template.deleted"})
    assert forged.status_code == 404
    assert post(receiver, b"{not json").status_code == 400
    assert post(receiver, {"organization_id": CREDLY_ORG}).status_code == 400
    assert post(receiver, b"[1, 2]").status_code == 400
    huge = json.dumps({"id": "x", "organization_id": CREDLY_ORG, "event_type": "e",
                       "pad": "x" * 70_000}).encode()
    assert post(receiver, huge).status_code == 413
    assert [(t.external_id, t.name, t.state) for t in Template.select()] == before
