"""The Credly + Accredible provider emulator (providers.md §4), in-process or over HTTP.

One ASGI app serves Credly under `/credly/v1/`, Accredible under `/accredible/v1/` and
`/accredible/v2/`, and the control API under `/_sandbox/`. It depends on Starlette, uvicorn and
httpx only (never on the store, services or UI), and keeps every record so tests can ask what
really reached the provider.

Fault endpoint names (for `set_faults` / `PUT /_sandbox/faults`; `*` matches every one):

- Credly: `credly.organization`, `credly.templates.list`, `credly.templates.get`,
  `credly.issue`, `credly.badges.list`, `credly.badges.get`, `credly.revoke`,
  `credly.events.get`, `credly.tokens.list`.
- Accredible: `accredible.issuer`, `accredible.groups.list` (GET all_groups),
  `accredible.groups.search`, `accredible.groups.get`, `accredible.designs.get`,
  `accredible.credentials.create`, `accredible.credentials.get`,
  `accredible.credentials.update` (PUT and PATCH), `accredible.credentials.delete`,
  `accredible.credentials.search` (v2), `accredible.credentials.list` (v1 all_credentials).

Rule keys: `latency_ms`, `jitter_ms` (extra 0..jitter), `rate_429`, `retry_after` (seconds,
default 1; null omits the header), `rate_5xx`, `statuses` (default [500, 502, 503]),
`rate_hang`, `hang_s` (default 30), `fail_next` (a list of statuses or "hang", consumed one per
request), `phase` (`before`: no effect; `after`: effect committed, then the failure answer).
Each key is looked up on the endpoint's rule, then on `*`. A hang answers 504 when it ends.

Behaviour switches (`Emulator(options=...)`, `set_options`, `PUT /_sandbox/options`):
`credly_revoked_blocks_reissue` (default false), `accredible_expired_blocks_duplicates`
(default true), `webhook_lenient` (any 2xx accepted; default false), `webhook_badge_events`
(also POST badge.* events; default false), `credly_badge_state_event` (`badge.state.changed`,
the documented spelling, or `badge.state_changed`), `webhook_retry_delays` (seconds between
attempts), `webhook_timeout_s`.

Control API (no auth, never faulted or counted): GET /_sandbox/state, GET /_sandbox/counters,
GET|PUT /_sandbox/faults, GET|PUT /_sandbox/options, POST /_sandbox/reset ({"seed"?}),
POST /_sandbox/clock ({"advance_seconds"}), POST /_sandbox/credly/templates
({"organization_id", "action", "template"}), POST /_sandbox/credly/badges/{id}/state
({"state": accepted|rejected|revoked|replaced, "reason"? (needed to revoke)}),
DELETE /_sandbox/credly/badges/{id} (records `badge.deleted`),
PUT /_sandbox/credly/organizations/{id}/webhook ({"webhook_url"}).
"""

from badgetui.sandbox.emulator import Emulator, load_seed
from badgetui.sandbox.seed import demo_seed

__all__ = ["Emulator", "demo_seed", "load_seed"]
