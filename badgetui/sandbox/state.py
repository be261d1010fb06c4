"""Everything the emulator remembers: both providers, the clock, ids and behaviour switches."""

from __future__ import annotations

import copy
import threading
from typing import Any

from badgetui.sandbox.accredible_state import AccredibleState
from badgetui.sandbox.clock import SandboxClock, iso_ms
from badgetui.sandbox.credly_state import CredlyState
from badgetui.sandbox.ids import IdSource

DEFAULT_OPTIONS: dict[str, Any] = {
    # Credly: a revoked badge blocks a re-issue of the same template (unconfirmed upstream).
    "credly_revoked_blocks_reissue": False,
    # Accredible: an expired credential still blocks a new one for the same email and group.
    "accredible_expired_blocks_duplicates": True,
    # Webhooks: any 2xx counts as delivered (Credly wants exactly 200).
    "webhook_lenient": False,
    # Webhooks: also POST badge.* events (Credly sends them when subscribed).
    "webhook_badge_events": False,
    # Webhooks: seconds to wait before each retry; its length is the number of retries.
    "webhook_retry_delays": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
    # Webhooks: how long one delivery attempt may take.
    "webhook_timeout_s": 5.0,
}


def merge_options(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Validated copy of `current` updated with `changes`; unknown names are a ValueError."""
    unknown = sorted(set(changes) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown options {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    merged = {**current, **changes}
    delays = merged["webhook_retry_delays"]
    if not isinstance(delays, list) or any(
            not isinstance(d, int | float) or d < 0 for d in delays):
        raise ValueError("webhook_retry_delays must be a list of non-negative seconds")
    return merged


class SandboxState:
    """The two providers built from one seed, guarded by one lock (handlers never await in it)."""

    def __init__(self, seed: dict[str, Any], clock: SandboxClock, rng_seed: int,
                 options: dict[str, Any]) -> None:
        self.seed = copy.deepcopy(seed)
        self.clock = clock
        self.options = options
        self.lock = threading.RLock()
        self.ids = IdSource(rng_seed)
        self.credly = CredlyState(self.seed.get("credly") or {}, clock, self.ids, options)
        self.accredible = AccredibleState(self.seed.get("accredible") or {}, clock, self.ids,
                                          options)

    def document(self) -> dict[str, Any]:
        """Both providers' records (without request counters, which the emulator adds)."""
        with self.lock:
            return {"now": iso_ms(self.clock.now()), "credly": self.credly.document(),
                    "accredible": self.accredible.document()}
