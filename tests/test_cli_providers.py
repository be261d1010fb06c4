"""Provider, sync, backup, deliver and sandbox commands, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from tests.conftest import CREDLY_ORG, sandbox_seed
from tests.helpers import DEMO, config_text, course_event, requirement, rule, template_config


@pytest.fixture
def env(tmp_path: Path, new_database) -> Iterator[tuple[Emulator, dict[str, str]]]:
    emulator = Emulator(sandbox_seed(), rng_seed=3)
    base, stop = start_in_thread(emulator)
    values = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    values.update(BADGETUI_DB=new_database("cli"),
                  BADGETUI_CONFIG=str(tmp_path / "none.toml"),
                  BADGETUI_CREDLY_API_URL=f"{base}/credly/v1/",
                  BADGETUI_ACCREDIBLE_API_URL=f"{base}/accredible/v1/",
                  BADGETUI_PROVIDER_TIMEOUT="2")
    try:
        yield emulator, values
    finally:
        stop()


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "badgetui", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def test_provider_add_list_and_wrong_key(env):
    _, e = env
    bad = run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key", "nope-1234")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "…1234" in bad.stderr and "nope-1234" not in bad.stderr
    unknown = run(e, "provider", "add", "credly", "--uuid", "0" * 8 + "-0000-4000-8000-" + "0" * 12,
                  "--api-key", "sandbox-credly-key")
    assert unknown.returncode == 1 and "unknown organization" in unknown.stderr
    ok = run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key",
             "sandbox-credly-key", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["name"] == "Example Academy"
    ok = run(e, "provider", "add", "accredible", "--name", "Example Accredible", "--api-key",
             "sandbox-accredible-key")
    assert ok.returncode == 0 and "Example Accredible" in ok.stdout
    listed = run(e, "provider", "list")
    assert "sandbox-credly-key" not in listed.stdout and "…-key" in listed.stdout
    unreachable = dict(e, BADGETUI_ACCREDIBLE_API_URL="http://127.0.0.1:9/accredible/v1/")
    down = run(unreachable, "provider", "add", "accredible", "--name", "X", "--api-key", "k-0000")
    assert down.returncode == 1 and "cannot reach Accredible" in down.stderr


def test_sync_dry_run_then_apply_then_ingest_and_deliver(env, tmp_path):
    emulator, e = env
    run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key", "sandbox-credly-key")
    dry = run(e, "sync", "--dry-run")
    assert dry.returncode == 0 and "5 new" in dry.stdout and "dry run" in dry.stdout
    assert json.loads(run(e, "template", "list", "--json").stdout) == []
    applied = json.loads(run(e, "sync", "--json").stdout)
    assert applied[0]["applied"] and len(applied[0]["create"]) == 5
    templates = json.loads(run(e, "template", "list", "--json").stdout)
    assert len(templates) == 5 and not any(t["active"] for t in templates)
    ext = templates[0]["external_id"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(config_text(template_config(ext, [
        requirement("demo", rule("course.course_key", DEMO), rule("is_passing", "true"))])))
    assert run(e, "config", "import", str(cfg)).returncode == 0
    ingest = run(e, "events", "ingest", "-", stdin=json.dumps(course_event("ann", DEMO)))
    assert ingest.returncode == 0 and "delivery: issued 1" in ingest.stdout
    (remote,) = emulator.state()["credly"]["badges"]
    badges = json.loads(run(e, "badges", "list", "--json").stdout)
    assert badges[0]["external_id"] == remote["id"]
    assert badges[0]["provider_state"] == "pending"


def test_deliver_retry_failed(env, tmp_path):
    emulator, e = env
    run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key", "sandbox-credly-key")
    run(e, "sync")
    ext = json.loads(run(e, "template", "list", "--json").stdout)[0]["external_id"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(config_text(template_config(ext, [requirement("any")])))
    run(e, "config", "import", str(cfg))
    emulator.set_faults({"credly.issue": {"fail_next": [422]}})
    first = run(e, "events", "ingest", "-", stdin=json.dumps(course_event("ann", DEMO)))
    assert "failed 1" in first.stdout and "failed:" in first.stderr
    assert emulator.state()["credly"]["badges"] == []
    again = run(e, "deliver", "--retry-failed")
    assert again.returncode == 0 and "requeued 1" in again.stdout and "issued 1" in again.stdout
    assert len(emulator.state()["credly"]["badges"]) == 1


def test_sandbox_serve_prints_listening_first(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(sandbox_seed()))
    proc = subprocess.Popen([sys.executable, "-m", "badgetui", "sandbox", "serve", "--seed",
                             str(seed), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        state = httpx.get(f"{url}/_sandbox/state", timeout=10).json()
        assert state["credly"]["badges"] == []
        org = httpx.get(f"{url}/credly/v1/organizations/{CREDLY_ORG}", timeout=10,
                        auth=("sandbox-credly-key", ""))
        assert org.json()["data"]["name"] == "Example Academy"
    finally:
        proc.terminate()
        proc.wait(10)


def test_accredible_removal_backup_list_and_restore(env, tmp_path):
    emulator, e = env
    run(e, "provider", "add", "accredible", "--name", "Example Accredible", "--api-key",
        "sandbox-accredible-key")
    run(e, "sync")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"version": 1, "templates": [
        {**template_config("9002", [requirement("demo", rule("course.course_key", DEMO))]),
         "provider": "accredible"}]}))
    assert run(e, "config", "import", str(cfg)).returncode == 0
    seed = sandbox_seed()
    seed["accredible"]["accounts"][0]["groups"] = [
        g for g in seed["accredible"]["accounts"][0]["groups"] if g["id"] != 9002]
    emulator.reset(seed)
    out = run(e, "sync")
    assert out.returncode == 0
    assert "9002" in out.stdout and "removed with 1 requirements" in out.stdout
    assert "backup 1 written" in out.stdout
    backups = json.loads(run(e, "backup", "list", "--json").stdout)
    assert [(b["id"], b["templates"]) for b in backups] == [(1, ["9002"])]
    exported = json.loads(run(e, "config", "export").stdout)
    assert "9002" not in {t["external_id"] for t in exported["templates"]}
    restored = run(e, "backup", "restore", "1")
    assert restored.returncode == 0 and "accredible:9002" in restored.stdout
    exported = json.loads(run(e, "config", "export").stdout)
    back = next(t for t in exported["templates"] if t["external_id"] == "9002")
    assert [r["id"] for r in back["requirements"]] == ["demo"] and back["active"] is False


def test_badges_revoke_and_resend_reach_the_emulator(env, tmp_path):
    emulator, e = env
    tpl = sandbox_seed()["credly"]["organizations"][0]["badge_templates"][0]["id"]
    assert run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key",
               "sandbox-credly-key").returncode == 0
    assert run(e, "sync").returncode == 0
    config = tmp_path / "config.json"
    config.write_text(config_text(template_config(tpl, [
        requirement("demo", rule("course.course_key", DEMO))])))
    assert run(e, "config", "import", str(config)).returncode == 0
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(course_event("ann", DEMO)) + "\n")
    assert run(e, "events", "ingest", str(events)).returncode == 0
    [badge] = json.loads(run(e, "badges", "list", "--json").stdout)
    [remote] = emulator.state()["credly"]["badges"]
    assert badge["external_id"] == remote["id"]

    resent = run(e, "badges", "resend", str(badge["id"]), "--json")
    assert resent.returncode == 0, resent.stderr
    assert json.loads(resent.stdout)["delivery"]["adopted"] == 1
    assert len(emulator.state()["credly"]["badges"]) == 1  # looked up, never issued twice

    no_reason = run(e, "badges", "revoke", str(badge["id"]), "--reason", "  ")
    assert no_reason.returncode == 1 and "needs a reason" in no_reason.stderr
    revoked = run(e, "badges", "revoke", str(badge["id"]), "--reason", "issued in error")
    assert revoked.returncode == 0, revoked.stderr
    assert "queued a revoke at the provider" in revoked.stdout
    [remote] = emulator.state()["credly"]["badges"]
    assert remote["state"] == "revoked"
    [after] = json.loads(run(e, "badges", "list", "--status", "revoked", "--json").stdout)
    assert after["revoke_reason"] == "revoked by operator: issued in error"
    again = run(e, "badges", "revoke", str(badge["id"]), "--reason", "twice")
    assert again.returncode == 1 and "is revoked, not awarded" in again.stderr
    progress = json.loads(run(e, "progress", "list", "--incomplete", "--json").stdout)
    assert [p["username"] for p in progress] == ["ann"]


# -- secrets, OAuth, rotation, API bases (issue 10) -------------------------------------------
OAUTH_ID = "cli-oauth-app"
OAUTH_SECRET = "cli-oauth-secret-5e2a"


def oauth_emulator(emulator: Emulator) -> None:
    seed = sandbox_seed()
    seed["credly"]["organizations"][0]["oauth_applications"] = [
        {"client_id": OAUTH_ID, "client_secret": OAUTH_SECRET}]
    emulator.reset(seed)


def credly_status(e: dict[str, str], key: str) -> int:
    """What the emulator answers this key now (200 live, 401 dead)."""
    url = f"{e['BADGETUI_CREDLY_API_URL']}organizations/{CREDLY_ORG}"
    return httpx.get(url, auth=(key, ""), timeout=10).status_code


def test_secrets_from_file_env_and_never_on_screen(env, tmp_path):
    _, e = env
    key_file = tmp_path / "credly.key"
    key_file.write_text("sandbox-credly-key\n")
    added = run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key-file",
                str(key_file))
    assert added.returncode == 0, added.stderr
    from_env = run(dict(e, BADGETUI_API_KEY="sandbox-accredible-key"), "provider", "add",
                   "accredible", "--name", "Example Accredible")
    assert from_env.returncode == 0, from_env.stderr
    none = run(e, "provider", "add", "accredible", "--name", "Second Accredible", stdin="")
    assert none.returncode == 1 and none.stderr.count("\n") == 1
    assert "--api-key-file FILE" in none.stderr and "BADGETUI_API_KEY" in none.stderr
    listed = run(e, "provider", "list", "--json")
    rows = {r["provider"]: r for r in json.loads(listed.stdout)}
    assert rows["credly"]["api_key"] == "…-key" and rows["accredible"]["api_key"] == "…-key"
    assert rows["credly"]["key_expires_at"] and not rows["credly"]["key_expiry_assumed"]
    for out in (added, from_env, none, listed, run(e, "provider", "list")):
        assert "sandbox-credly-key" not in out.stdout + out.stderr
        assert "sandbox-accredible-key" not in out.stdout + out.stderr


def test_the_key_prompt_does_not_echo(env):
    import pty
    import select

    _, e = env
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the pty as its controlling terminal
        os.execve(sys.executable, [sys.executable, "-m", "badgetui", "provider", "add",
                                   "credly", "--uuid", CREDLY_ORG], e)
    seen = b""
    try:
        while b"not shown" not in seen:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"no prompt: {seen!r}"
            seen += os.read(fd, 1024)
        os.write(fd, b"sandbox-credly-key\n")
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"added credly account 1" in seen and b"sandbox-credly-key" not in seen
    listed = json.loads(run(e, "provider", "list", "--json").stdout)
    assert [a["api_key"] for a in listed] == ["…-key"]


def test_oauth_account_through_the_cli(env, tmp_path):
    emulator, e = env
    oauth_emulator(emulator)
    wrong = run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--client-id", OAUTH_ID,
                "--client-secret", "bad-secret-0001")
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1
    assert f"organization {CREDLY_ORG}" in wrong.stderr and "…0001" in wrong.stderr
    assert "bad-secret" not in wrong.stderr
    secret_file = tmp_path / "secret"
    secret_file.write_text(OAUTH_SECRET)
    ok = run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--client-id", OAUTH_ID,
             "--client-secret-file", str(secret_file))
    assert ok.returncode == 0, ok.stderr
    listed = run(e, "provider", "list")
    assert f"oauth {OAUTH_ID} …5e2a" in listed.stdout and OAUTH_SECRET not in listed.stdout
    assert run(e, "sync").returncode == 0
    assert len(json.loads(run(e, "template", "list", "--json").stdout)) == 5
    assert emulator.counters()["credly.oauth.token"]["requests"] >= 2  # wrong one, then ours
    assert emulator.state()["credly"]["oauth"]["tokens_issued"] >= 1


def test_rotate_through_the_cli_then_replace_by_hand(env, tmp_path):
    emulator, e = env
    assert run(e, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key",
               "sandbox-credly-key").returncode == 0
    rotated = run(e, "provider", "rotate", CREDLY_ORG)
    assert rotated.returncode == 0, rotated.stderr
    [org] = emulator.state()["credly"]["organizations"]
    [live] = org["live_keys"]
    assert f"now {live}" in rotated.stdout
    assert f"expires {org['key_expires_at'][:10]}" in rotated.stdout
    assert credly_status(e, "sandbox-credly-key") == 401
    listed = json.loads(run(e, "provider", "list", "--json").stdout)
    assert listed[0]["api_key"] == live and listed[0]["key_expires_at"].startswith(
        org["key_expires_at"][:10])
    bad = tmp_path / "bad.key"
    bad.write_text("hand-made-key-9999")
    refused = run(e, "provider", "rotate", CREDLY_ORG, "--api-key-file", str(bad))
    assert refused.returncode == 1 and "…9999" in refused.stderr
    assert "hand-made-key" not in refused.stderr
    assert json.loads(run(e, "provider", "list", "--json").stdout)[0]["api_key"] == live


def test_per_account_base_is_stored_shown_and_used(env):
    _, e = env
    dead = dict(e, BADGETUI_ACCREDIBLE_API_URL="http://127.0.0.1:9/accredible/v1/")
    base = e["BADGETUI_ACCREDIBLE_API_URL"]
    added = run(dead, "provider", "add", "accredible", "--name", "Example Accredible",
                "--api-key", "sandbox-accredible-key", "--api-url", base)
    assert added.returncode == 0, added.stderr
    listed = json.loads(run(dead, "provider", "list", "--json").stdout)
    assert [(a["api_url"], a["base"]) for a in listed] == [(base, base)]
    assert run(dead, "sync").returncode == 0
    assert len(json.loads(run(dead, "template", "list", "--json").stdout)) == 3
    wrong = run(dead, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key", "k-1234",
                "--region", "eu")
    assert wrong.returncode == 1 and "regions are Accredible's" in wrong.stderr
