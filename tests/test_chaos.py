"""Chaos: a workload through `badgetui events ingest` while the emulator fails 30 % of calls.

At the end every awarded badge exists exactly once at the provider, every revoked one is revoked
(Credly) or expired (Accredible) there, and no job is lost; also with the delivery worker killed
with SIGKILL mid-way and restarted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from badgetui.sandbox import Emulator
from badgetui.sandbox.server import start_in_thread
from badgetui.services import Services
from badgetui.settings import Settings
from badgetui.store.models import Badge, DeliveryJob, Learner, Template
from tests.conftest import CREDLY_ORG, credly_templates, sandbox_seed
from tests.helpers import (
    DEMO,
    OTHER,
    config_text,
    course_event,
    penalty,
    requirement,
    rule,
    template_config,
)

CREDLY_TPL = credly_templates(1)[0]["id"]
CHAOS = {
    # 30 % of API calls fail: 429 with Retry-After, 5xx (some after the effect), and hangs.
    "*": {"rate_429": 0.10, "retry_after": 1, "rate_5xx": 0.10, "rate_hang": 0.10, "hang_s": 30},
    "credly.issue": {"rate_429": 0.10, "retry_after": 1, "rate_5xx": 0.10, "rate_hang": 0.10,
                     "hang_s": 30, "phase": "after"},
    "accredible.credentials.create": {"rate_429": 0.10, "retry_after": 1, "rate_5xx": 0.10,
                                      "rate_hang": 0.10, "hang_s": 30, "phase": "after"},
}


@pytest.fixture
def world(tmp_path: Path, new_database) -> Iterator[tuple[Emulator, Path, dict[str, str]]]:
    emulator = Emulator(sandbox_seed(), rng_seed=11)
    base, stop = start_in_thread(emulator)
    db = new_database("chaos")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGETUI_")}
    env.update(
        BADGETUI_DB=db, BADGETUI_CONFIG=str(tmp_path / "none.toml"),
        BADGETUI_CREDLY_API_URL=f"{base}/credly/v1/",
        BADGETUI_ACCREDIBLE_API_URL=f"{base}/accredible/v1/",
        BADGETUI_PROVIDER_TIMEOUT="1", BADGETUI_DELIVERY_BASE_DELAY="0.1",
        BADGETUI_DELIVERY_MAX_DELAY="1.5", BADGETUI_DELIVERY_LEASE="3",
        BADGETUI_DELIVERY_CONCURRENCY="8",
    )
    cli(env, "provider", "add", "credly", "--uuid", CREDLY_ORG, "--api-key",
        "sandbox-credly-key")
    cli(env, "provider", "add", "accredible", "--name", "Example Accredible", "--api-key",
        "sandbox-accredible-key")
    cli(env, "sync")
    cfg = tmp_path / "config.json"
    demo_pass = rule("course.course_key", DEMO), rule("is_passing", "true")
    cfg.write_text(json.dumps({"version": 1, "templates": [
        json.loads(config_text(template_config(CREDLY_TPL, [
            requirement("demo", *demo_pass, group="A"),
            requirement("other", rule("course.course_key", OTHER), rule("is_passing", "true"),
                        group="B"),
        ], [penalty(["demo"], rule("course.course_key", DEMO), rule("is_passing", "false"))],
        )))["templates"][0],
        {**template_config("9001", [requirement("demo", *demo_pass)],
                           [penalty(["demo"], rule("course.course_key", DEMO),
                                    rule("is_passing", "false"))]),
         "provider": "accredible", "account": "Example Accredible"},
    ]}))
    cli(env, "config", "import", str(cfg))
    try:
        yield emulator, tmp_path, env
    finally:
        emulator.set_faults({})
        stop()


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "badgetui", *args], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def workload(path: Path, learners: int = 240, seed: int = 5) -> None:
    rnd = random.Random(seed)
    events = []
    for n in range(learners * 3):
        learner = rnd.randrange(learners)
        course = rnd.choice([DEMO, DEMO, OTHER])
        events.append(course_event(f"learner{learner}", course, passing=rnd.random() < 0.8,
                                   event_id=f"chaos-{n}", seconds=n, uid=1000 + learner))
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")


def settle(env: dict[str, str]) -> None:
    """Run `deliver` until nothing is queued (bounded)."""
    for _ in range(20):
        cli(env, "deliver", check=False)
        left = subprocess.run(
            [sys.executable, "-c",
             "from badgetui.services import Services; from badgetui.settings import load_settings;"
             "from badgetui.store.models import DeliveryJob as J;"
             "Services.open(load_settings());"
             "print(J.select().where(J.state.in_(['queued','running'])).count())"],
            env=env, capture_output=True, text=True, check=True).stdout.strip()
        if left == "0":
            return
    raise AssertionError(f"{left} jobs never delivered")


def check_exactly_once(emulator: Emulator, db: str) -> None:
    emulator.set_faults({})
    state = emulator.state()
    services = Services.open(Settings(db=db))
    try:
        jobs = {(j.kind, j.state) for j in DeliveryJob.select()}
        assert not {s for _, s in jobs} & {"queued", "running", "failed"}, jobs
        credly_tpl = Template.get(Template.external_id == CREDLY_TPL)
        remote = [b for b in state["credly"]["badges"] if b["badge_template_id"] == CREDLY_TPL]
        live = [b for b in remote if b["state"] != "revoked"]
        held = list(Badge.select().where((Badge.template == credly_tpl)
                                         & (Badge.status == "awarded")))
        # every held badge exactly once, nothing else live at the provider
        assert sorted(b["id"] for b in live) == sorted(b.external_id for b in held)
        per_earner: dict[str, int] = {}
        for b in live:
            per_earner[b["issuer_earner_id"]] = per_earner.get(b["issuer_earner_id"], 0) + 1
        assert all(n == 1 for n in per_earner.values())
        by_id = {b["id"]: b for b in remote}
        for badge in Badge.select().where((Badge.template == credly_tpl)
                                          & (Badge.status == "revoked")):
            if badge.external_id:
                assert by_id[badge.external_id]["state"] == "revoked"
            else:
                assert badge.provider_state == "cancelled"

        creds = [c for c in state["accredible"]["credentials"] if c["group_id"] == 9001]
        unexpired = [c for c in creds if not c["expired_on"]]
        held_acc = list(Badge.select().join(Template).where(
            (Template.provider == "accredible") & (Badge.status == "awarded")))
        assert sorted(str(c["id"]) for c in unexpired) == sorted(b.external_id for b in held_acc)
        emails = [c["recipient"]["email"] for c in unexpired]
        assert len(emails) == len(set(emails))
        cred_by_id = {str(c["id"]): c for c in creds}
        for badge in Badge.select().join(Template).where(
                (Template.provider == "accredible") & (Badge.status == "revoked")):
            if badge.external_id and not Badge.select().where(
                    (Badge.external_id == badge.external_id)
                    & (Badge.status == "awarded")).exists():
                assert cred_by_id[badge.external_id]["expired_on"]
        assert Learner.select().count() > 100
        assert held and held_acc, "the workload must award on both providers"
        assert any(b.status == "revoked" for b in Badge.select())
    finally:
        services.close()
    assert state["requests"]["failed_injected"] > 50


def halves(path: Path) -> tuple[Path, Path]:
    lines = path.read_text().splitlines()
    first, second = path.with_suffix(".1.jsonl"), path.with_suffix(".2.jsonl")
    first.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    second.write_text("\n".join(lines[len(lines) // 2 :]) + "\n")
    return first, second


def test_chaos_through_events_ingest(world):
    emulator, tmp, env = world
    events = tmp / "events.jsonl"
    workload(events)
    emulator.set_faults(CHAOS)
    totals = {"processed": 0, "awarded": 0, "revoked": 0}
    delivered = {"revoked": 0, "adopted": 0}
    for part in halves(events):  # badges issued by the first half are revoked by the second
        counts = json.loads(cli(env, "events", "ingest", str(part), "--json").stdout)
        for key in totals:
            totals[key] += counts[key]
        for key in delivered:
            delivered[key] += counts["delivery"][key]
    assert totals["processed"] == 720 and totals["awarded"] > 50 and totals["revoked"] > 10
    assert delivered["revoked"] > 0 and delivered["adopted"] > 0
    settle(env)
    check_exactly_once(emulator, env["BADGETUI_DB"])


def test_chaos_with_the_worker_killed_and_restarted(world):
    emulator, tmp, env = world
    events = tmp / "events.jsonl"
    workload(events, seed=9)
    emulator.set_faults(CHAOS)
    for part in halves(events):
        cli(env, "events", "ingest", str(part), "--no-deliver")
        for _ in range(2):
            worker = subprocess.Popen([sys.executable, "-m", "badgetui", "deliver"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2.0)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
    time.sleep(3.2)  # the dead workers' leases run out
    settle(env)
    check_exactly_once(emulator, env["BADGETUI_DB"])
