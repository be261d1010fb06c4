"""The Open edX event bus on Redis Streams (openedx-events.md §7): consumer and publisher.

config (settings, client), entries (fields <-> events), watermark (stream order across
consumers), consumer, publisher (the outbox), workers (delivery beside a consumer).

The consumer differs from upstream's on purpose (§7.2): its own group, whose position is kept
across restarts; an entry is acknowledged only after the database commit that recorded it, so a
crash redelivers it and deduplication by the metadata `id` makes that harmless; a failing entry
is retried with backoff and then dead-lettered, and a malformed one is dead-lettered at once,
so one poison entry never stops the stream. Entries become the same envelope a JSON Lines file
holds and go through the same `IntakeService`: one way in for events.

Several consumers in one group give the result of one: penalties make the order of a learner's
events matter, so entries are committed in stream order whoever holds them (a watermark kept in
the database, see `BusConsumer`). They take turns on the stream: more consumers buy
availability (a dead one's entries are taken over), not throughput.

The publisher drains the outgoing-events table (a transactional outbox): rows are written to the
stream after the transaction that made them committed, keep their UUID as `id`, and are marked
published only after `XADD` succeeded, so a crash re-publishes with the same id.

No SIGALRM and short BLOCK times: both run in any thread and stop within `bus_block` seconds
of `stop` being set.
"""

from badgetui.services.bus.config import (
    DB_TRANSIENT,
    FIELDS,
    REDIS_TRANSIENT,
    SOURCE,
    SOURCELIB,
    BusConfig,
    connect,
)
from badgetui.services.bus.consumer import BusConsumer
from badgetui.services.bus.dlq import DeadLetters
from badgetui.services.bus.entries import (
    MalformedEntry,
    entry_envelope,
    entry_type,
    outgoing_fields,
    utc_time,
)
from badgetui.services.bus.publisher import BusPublisher
from badgetui.services.bus.stats import ConsumerStats
from badgetui.services.bus.watermark import (
    lock_watermark,
    read_watermark,
    watermark_keys,
    write_watermark,
)
from badgetui.services.bus.workers import BackgroundDelivery

__all__ = [
    "DB_TRANSIENT", "FIELDS", "REDIS_TRANSIENT", "SOURCE", "SOURCELIB", "BackgroundDelivery",
    "BusConfig", "BusConsumer", "BusPublisher", "ConsumerStats", "DeadLetters", "MalformedEntry",
    "connect",
    "entry_envelope", "entry_type", "lock_watermark", "outgoing_fields", "read_watermark",
    "utc_time", "watermark_keys", "write_watermark",
]
