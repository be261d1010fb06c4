"""`badgetui webhooks serve` over real HTTPS: the CLI as a subprocess, a test CA from trustme."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from badgetui.cli import main
from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.services.webhooks import WEBHOOK_PATH
from badgetui.settings import Settings
from badgetui.store.models import Template
from tests.conftest import CREDLY_ORG, sandbox_seed

ROOT = Path(__file__).resolve().parents[1]
NEW = {"id": "11111111-2222-4333-8444-555555555555", "name": "Over TLS", "state": "active"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert.private_key_pem.write_to_path(str(key_file))
    for n, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(cert_file), append=n > 0)
    return ca, cert_file, key_file


@pytest.fixture
def credly(db_url: str, clock) -> Iterator[tuple[Emulator, str]]:
    """The emulator on loopback and a database that knows its organization (synced)."""
    emulator = Emulator(sandbox_seed(), clock=clock, rng_seed=3)
    base, stop = start_in_thread(emulator)
    api = f"{base}/credly/v1/"
    services = Services.open(Settings(db=db_url, credly_api_url=api), clock=clock)
    try:
        asyncio.run(services.accounts.add_credly(CREDLY_ORG, "sandbox-credly-key"))
        asyncio.run(services.sync.sync())
        yield emulator, api
    finally:
        services.close()
        stop()


def serve(db_url: str, api: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {**os.environ, "BADGETUI_DB": db_url, "BADGETUI_CREDLY_API_URL": api,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "badgetui", "webhooks", "serve", "--port", str(port), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def wait_listening(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"receiver exited {proc.returncode}: {proc.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("receiver never listened")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_webhook_over_https_changes_the_database(credly, db_url, tls_files):
    emulator, api = credly
    ca, cert_file, key_file = tls_files
    proc, port = serve(db_url, api, "--tls-cert", str(cert_file), "--tls-key", str(key_file))
    try:
        wait_listening(proc, port)
        assert proc.stdout.readline().strip() == (
            f"listening on https://127.0.0.1:{port}{WEBHOOK_PATH}")
        event = emulator.credly_template(CREDLY_ORG, "create", NEW)
        body = {"id": event["id"], "organization_id": CREDLY_ORG,
                "event_type": event["event_type"], "occurred_at": event["occurred_at"]}
        url = f"https://127.0.0.1:{port}{WEBHOOK_PATH}"
        context = ssl.create_default_context()
        ca.configure_trust(context)
        answer = httpx.post(url, json=body, verify=context, timeout=10)
        assert answer.status_code == 200
        assert answer.json() == {"detail": "created"}
        row = Template.get(Template.external_id == NEW["id"])
        assert row.name == "Over TLS" and not row.is_active

        with pytest.raises(httpx.ConnectError):  # the system trust store knows no test CA
            httpx.post(url, json=body, timeout=10)
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.post(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", json=body, timeout=10)
        assert proc.poll() is None  # and the receiver is still up
        again = httpx.post(url, json=body, verify=context, timeout=10)
        assert again.json() == {"detail": "updated"}
    finally:
        stop(proc)


def test_plain_http_still_the_default(credly, db_url):
    emulator, api = credly
    proc, port = serve(db_url, api)
    try:
        wait_listening(proc, port)
        assert proc.stdout.readline().strip() == (
            f"listening on http://127.0.0.1:{port}{WEBHOOK_PATH}")
        event = emulator.credly_template(CREDLY_ORG, "create", NEW)
        answer = httpx.post(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", timeout=10, json={
            "id": event["id"], "organization_id": CREDLY_ORG, "event_type": event["event_type"]})
        assert answer.status_code == 200
        assert Template.get(Template.external_id == NEW["id"]).name == "Over TLS"
    finally:
        stop(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together: give both or neither"),
    (["--tls-key", "{key}"], "--tls-cert and --tls-key go together: give both or neither"),
    (["--tls-cert", "{missing}", "--tls-key", "{key}"], "{missing}: no such file"),
    (["--tls-cert", "{cert}", "--tls-key", "{garbage}"], "not a usable certificate and key"),
    (["--tls-cert", "{key}", "--tls-key", "{cert}"], "not a usable certificate and key"),
])
def test_tls_mistakes_are_one_line(tls_files, tmp_path, capsys, args, message):
    _, cert_file, key_file = tls_files
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    names = {"cert": cert_file, "key": key_file, "missing": tmp_path / "nope.pem",
             "garbage": garbage}
    assert main(["webhooks", "serve", *[a.format(**names) for a in args]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("badgetui: error: ")
    assert message.format(**names) in err
