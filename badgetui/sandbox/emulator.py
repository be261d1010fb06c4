"""The in-process emulator object: one seeded state, one ASGI app, the control operations."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette

from badgetui.sandbox.app import build_app
from badgetui.sandbox.clock import SandboxClock
from badgetui.sandbox.credly_state import CredlyEvent
from badgetui.sandbox.faults import FaultInjector
from badgetui.sandbox.seed import check_seed, demo_seed, load_seed
from badgetui.sandbox.state import DEFAULT_OPTIONS, SandboxState, merge_options
from badgetui.sandbox.webhooks import WebhookSender

__all__ = ["Emulator", "load_seed"]


class Emulator:
    """Credly + Accredible on one origin, with faults, counters, webhooks and a movable clock.

    `seed=None` uses `demo_seed()`. `options` sets behaviour switches (see `DEFAULT_OPTIONS`);
    `webhook_transport` routes webhook POSTs through an httpx transport instead of the network.
    """

    def __init__(self, seed: dict[str, Any] | None = None, *,
                 clock: Callable[[], datetime] | None = None, rng_seed: int = 0,
                 options: dict[str, Any] | None = None,
                 webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._seed = copy.deepcopy(seed) if seed is not None else demo_seed()
        check_seed(self._seed)
        self._clock = SandboxClock(clock)
        self._rng_seed = rng_seed
        self.options: dict[str, Any] = merge_options(copy.deepcopy(DEFAULT_OPTIONS),
                                                     options or {})
        self.faults = FaultInjector(rng_seed)
        self.webhooks = WebhookSender(self.options, self._clock, webhook_transport)
        self.sandbox = self._build(self._seed)
        self.app: Starlette = build_app(self)

    def _build(self, seed: dict[str, Any]) -> SandboxState:
        state = SandboxState(seed, self._clock, self._rng_seed, self.options)
        state.credly.listener = self._on_credly_event
        return state

    def _on_credly_event(self, event: CredlyEvent) -> None:
        """Every recorded Credly event: POST it to the organization's webhook when it has one."""
        if event.event_type.startswith("badge.") and not self.options["webhook_badge_events"]:
            return
        org = self.sandbox.credly.organizations.get(event.organization_id)
        if org is not None and org.webhook_url:
            self.webhooks.fire(org.webhook_url, event.notification())

    # --- the public interface -------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport: `httpx.AsyncClient(transport=emu.transport(), base_url=...)`."""
        return httpx.ASGITransport(app=self.app)

    def now(self) -> datetime:
        """The emulator's current time (the injected clock plus every advance)."""
        return self._clock.now()

    def state(self) -> dict[str, Any]:
        """GET /_sandbox/state: both providers' records, request totals, faults, options."""
        document = self.sandbox.document()
        document["credly"]["webhook_deliveries"] = self.webhooks.deliveries()
        document["requests"] = self.faults.totals()
        document["counters"] = self.faults.counters()
        document["faults"] = self.faults.rules()
        document["options"] = copy.deepcopy(self.options)
        return document

    def set_faults(self, rules: dict[str, Any]) -> None:
        """Replace every fault rule (PUT /_sandbox/faults); ValueError on unknown names/keys."""
        self.faults.set_rules(rules)

    def set_options(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change behaviour switches (PUT /_sandbox/options); returns them all."""
        merged = merge_options(self.options, changes)
        with self.sandbox.lock:
            self.options.clear()
            self.options.update(merged)
        return copy.deepcopy(self.options)

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        """Back to a fresh start: the seed (a new one if given) reloaded, clock advances undone,
        faults cleared, counters zeroed, ids and the fault generator rewound. Options stay."""
        if seed is not None:
            check_seed(seed)
            self._seed = copy.deepcopy(seed)
        self._clock.rewind()
        self.faults.reset(self._rng_seed)
        self.webhooks.reset()
        self.sandbox = self._build(self._seed)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time (key ages, dates, event times) forward."""
        self._clock.advance(seconds)

    def credly_template(self, org_id: str, action: str, template: dict[str, Any]) -> dict[str, Any]:
        """A dashboard change (create|change|archive|delete): records the event, fires the
        organization's webhook, returns the event as `GET events/{id}` shows it."""
        with self.sandbox.lock:
            return self.sandbox.credly.template_action(org_id, action, template).to_json()

    def set_credly_badge_state(self, badge_id: str, state: str,
                               reason: str | None = None) -> dict[str, Any]:
        """The earner accepts or rejects, or the issuer revokes (`reason` needed) or replaces the
        badge in the dashboard: records the state change event and fires the webhook."""
        credly = self.sandbox.credly
        with self.sandbox.lock:
            return credly.badge_json(credly.set_badge_state(badge_id, state, reason))

    def delete_credly_badge(self, badge_id: str) -> dict[str, Any]:
        """The issuer deletes a badge in the dashboard: records `badge.deleted` (with the badge
        as it was), fires the webhook, returns the event as `GET events/{id}` shows it."""
        with self.sandbox.lock:
            return self.sandbox.credly.delete_badge(badge_id).to_json()

    def set_credly_webhook_url(self, org_id: str, url: str | None) -> None:
        """Point an organization's webhooks at a receiver known only at run time."""
        with self.sandbox.lock:
            self.sandbox.credly.set_webhook_url(org_id, url)

    def counters(self) -> dict[str, dict[str, int]]:
        """Per endpoint name: requests, failed_injected, max_in_flight."""
        return self.faults.counters()

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery with its attempts (status or error) and outcome."""
        return self.webhooks.deliveries()

    async def wait_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until no webhook delivery is still trying; False when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        while self.webhooks.pending():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True
