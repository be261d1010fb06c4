"""Stream entries as events: the eight fields of openedx-events.md §7, decoded and encoded."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from badgetui.domain import avro
from badgetui.domain.events import EVENT_SPECS, quote
from badgetui.services.bus.config import FIELDS, SOURCE, SOURCELIB
from badgetui.services.common import iso
from badgetui.store.models import OutgoingEvent

if TYPE_CHECKING:
    from badgetui.domain.events import Event
    from badgetui.services.intake import IntakeService

#: The minor version of every schema badgetui holds: upstream's signals are all at 0 (11.2.0);
#: openedx-events bumps it when it appends optional fields.
KNOWN_MINOR: Final = 0


class MalformedEntry(ValueError):
    """The entry cannot be an event: it goes to the dead-letter stream at once."""


def _text(fields: dict[bytes, bytes], name: str) -> str:
    raw = fields.get(name.encode())
    if raw is None:
        raise MalformedEntry(f"field {name} is missing")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEntry(f"field {name} is not valid UTF-8") from None


def entry_type(fields: dict[bytes, bytes]) -> str:
    event_type = _text(fields, "type")
    if not event_type:
        raise MalformedEntry("field type is empty")
    return event_type


def utc_time(text: str) -> datetime:
    """The entry's `time`: ISO-8601 in UTC (`+00:00` or `Z`), as upstream consumers demand."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEntry(f"time {quote(text)} is not ISO-8601") from None
    offset = moment.utcoffset()
    if offset is None:
        raise MalformedEntry(f"time {quote(text)} has no offset")
    if offset.total_seconds() != 0:
        raise MalformedEntry(f"time {quote(text)} is not UTC")
    return moment


def entry_minor(fields: dict[bytes, bytes]) -> int:
    """The entry's `minorversion` (a non-negative integer, as text)."""
    text = _text(fields, "minorversion").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # "²".isdigit() too
        raise MalformedEntry(f"field minorversion {quote(text)} is not a non-negative integer")
    return int(text)


#: Told (event type, minor version, bytes beyond the known fields) for each newer entry.
NewerHook = Callable[[str, int, int], None]


def entry_envelope(fields: dict[bytes, bytes], on_newer: NewerHook | None = None
                   ) -> dict[str, Any]:
    """The JSON envelope intake reads (formats.md, openedx-events.md §5) from a stream entry:
    `id = metadata.id`, `event_type = type`, `time = metadata.time`, `data` the decoded Avro.

    An entry of a newer minor version than ours is read with the fields we know (what the
    compatibility rules of openedx-events allow a minor version to add are optional fields at
    the end); one that still does not decode is malformed, its version in the reason."""
    meta = {name: _text(fields, name) for name in FIELDS[:-1]}
    if not meta["id"].strip():
        raise MalformedEntry("field id is empty")
    utc_time(meta["time"])
    raw = fields.get(b"event_data")
    if raw is None:
        raise MalformedEntry("field event_data is missing")
    event_type = entry_type(fields)
    if not avro.has_schema(event_type):
        raise MalformedEntry(f"no Avro schema for {quote(event_type)}")
    minor = entry_minor(fields)
    version = f"minor version {minor}" + (
        f", newer than the {KNOWN_MINOR} badgetui knows" if minor > KNOWN_MINOR else "")
    try:
        data, left = avro.decode_prefix(event_type, raw)
    except avro.AvroDecodeError as exc:
        raise MalformedEntry(f"event_data ({version}): {exc}") from None
    if left and minor <= KNOWN_MINOR:
        raise MalformedEntry(f"event_data ({version}): {left} bytes left after the Avro record")
    if minor > KNOWN_MINOR and on_newer is not None:
        on_newer(event_type, minor, left)
    meta["event_type"] = meta.pop("type")
    return {"metadata": meta, "data": data}


def entry_event(intake: IntakeService, fields: dict[bytes, bytes],
                on_newer: NewerHook | None = None) -> Event:
    """The event an entry is, for the consumer and a dead-letter replay alike: a type that is
    not configured is ignored without decoding (badge events included); any other goes through
    the envelope (MalformedEntry if it is not one)."""
    event_type = entry_type(fields)
    if event_type not in intake.configured:
        raw_id = fields.get(b"id")
        meta = {"id": raw_id.decode("utf-8", "replace") if raw_id else None,
                "event_type": event_type}
        return intake.parse_object({"metadata": meta, "data": None})
    return intake.parse_object(entry_envelope(fields, on_newer))


def outgoing_fields(row: OutgoingEvent, host: str) -> dict[str, bytes]:
    """The eight fields of §7.3 for one outbox row, `event_data` encoded per §6."""
    data = {EVENT_SPECS[row.event_type].data_key: json.loads(row.payload)}
    return {
        "type": row.event_type.encode(),
        "id": row.uuid.encode(),
        "source": SOURCE.encode(),
        "time": (iso(row.time) or "").encode(),
        "minorversion": b"0",
        "sourcehost": host.encode(),
        "sourcelib": SOURCELIB.encode(),
        "event_data": avro.encode(row.event_type, data),
    }


StreamId = tuple[int, int]
#: The watermark of a (stream, group) that has committed nothing: before every entry.
ORIGIN: Final[StreamId] = (0, 0)


def id_key(entry_id: bytes | str) -> StreamId:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def id_text(key: StreamId) -> str:
    return f"{key[0]}-{key[1]}"

