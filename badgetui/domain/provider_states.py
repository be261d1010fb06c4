"""The provider side of a badge, as badgetui records it (semantics.md "Delivery").

Local: `created` (not sent yet), `error` (last attempt failed), `cancelled` (revoked before it
was sent). Credly: `pending`, `accepted`, `rejected`, `revoked`, `replaced`, `deleted` (what
the provider or its webhooks report). Accredible: `accepted`, `expired`, and `unpublished`
(created but left unpublished, e.g. out of credits: not delivered until re-published).
"""

from __future__ import annotations

PROVIDER_STATES = ("created", "pending", "accepted", "rejected", "revoked", "expired",
                   "unpublished", "replaced", "deleted", "error", "cancelled")
#: The earner has not answered yet (Credly) or the provider has not published it (Accredible).
WAITING_STATES = ("pending", "unpublished")
