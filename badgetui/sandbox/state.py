"""Everything the emulator remembers: both providers, the clock, ids and behaviour switches."""

from __future__ import annotations

import copy
import threading
from typing import Any

from badgetui.sandbox.accredible_state import AccredibleState
from badgetui.sandbox.clock import SandboxClock, iso_ms
from badgetui.sandbox.credly_oauth import check_oauth_options
from badgetui.sandbox.credly_state import CredlyState
from badgetui.sandbox.ids import IdSource
from badgetui.sandbox.ratelimit import check_rate_limit, check_retry_after

CREDLY_BADGE_STATE_EVENTS = ("badge.state.changed", "badge.state_changed")

DEFAULT_OPTIONS: dict[str, Any] = {
    # Credly: a revoked badge blocks a re-issue of the same template (unconfirmed upstream).
    "credly_revoked_blocks_reissue": False,
    # Accredible: an expired credential still blocks a new one for the same email and group.
    "accredible_expired_blocks_duplicates": True,
    # Lookups match loosely, as a real server may: Credly `filter=` and Accredible v2 search
    # terms match by prefix or substring, and unknown keys are ignored instead of a 400.
    "loose_filters": False,
    # Accredible credits, one pool for the whole emulator: null = unlimited; a number = credits
    # left since the last reset. Each published credential spends one; without any, a create
    # still succeeds but leaves the credential unpublished (`approve: false`), as documented.
    "accredible_credits": None,
    # Accredible without credits: "unpublished" (documented: created, not published; a publish
    # stays unpublished) or "refuse" (422 {"errors": "Insufficient credits"}; another reading).
    "accredible_out_of_credits": "unpublished",
    # Accredible's per-IP budget across all its endpoints: null (off) or
    # {"limit": 2000, "window_s": 300, "bucket_s": 30[, "count_rejected": true]}; over it, 429.
    "accredible_rate_limit": None,
    # Accredible v2 search as an eventually consistent index: credentials created or updated
    # in the last N seconds are not found by search yet (GET by id finds them). 0 = at once.
    "accredible_search_lag_s": 0,
    # Retry-After on those 429s: false (none, as documented), true (the real wait), or seconds.
    "rate_limit_retry_after": False,
    # Credly OAuth: seconds an access token lives (Credly: about 2 hours, unconfirmed).
    "credly_oauth_expires_in": 7200,
    # Credly OAuth token endpoint: "both" (/credly/oauth/token, the documented web-host
    # reading, and /oauth/token, the API-host reading of openedx/credentials), "web" or "api".
    "credly_oauth_paths": "both",
    # Credly key rotation: the endpoint exists (false: 404, the "not documented" reading) and
    # the rotated key dies after this many seconds (0: at once, as openedx/credentials says).
    "credly_rotate_endpoint": True,
    "credly_rotate_grace_s": 0,
    # Webhooks: any 2xx counts as delivered (Credly wants exactly 200).
    "webhook_lenient": False,
    # Webhooks: also POST badge.* events (Credly sends them when subscribed).
    "webhook_badge_events": False,
    # Credly: the type of a badge state change event. Credly's docs spell it
    # "badge.state.changed"; "badge.state_changed" (a spelling seen in issue text) is offered
    # so receivers can be tested against both.
    "credly_badge_state_event": "badge.state.changed",
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
    if merged["credly_badge_state_event"] not in CREDLY_BADGE_STATE_EVENTS:
        raise ValueError(f"credly_badge_state_event must be one of {CREDLY_BADGE_STATE_EVENTS}")
    credits = merged["accredible_credits"]
    if credits is not None and (isinstance(credits, bool) or not isinstance(credits, int)):
        raise ValueError("accredible_credits must be null or an integer")
    if merged["accredible_out_of_credits"] not in ("unpublished", "refuse"):
        raise ValueError("accredible_out_of_credits must be unpublished or refuse")
    lag = merged["accredible_search_lag_s"]
    if isinstance(lag, bool) or not isinstance(lag, int | float) or lag < 0:
        raise ValueError("accredible_search_lag_s must be seconds >= 0")
    check_oauth_options(merged)
    check_rate_limit(merged["accredible_rate_limit"])
    check_retry_after(merged["rate_limit_retry_after"])
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
