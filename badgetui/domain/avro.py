"""Avro schemas and schemaless encoding of the event-bus payloads (openedx-events.md §6).

The schemas are built from the pydantic records of `domain.events`, whose field order is the
wire order, so one declaration serves the JSON intake, the rule editor and the bus. Avro binary
carries no field names: bytes read with the wrong schema can fail or decode to nonsense, so a
decoder here refuses any error *and* any leftover byte.
"""

from __future__ import annotations

import copy
import io
import types
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Final, Union, get_args, get_origin
from uuid import UUID

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from pydantic import BaseModel

from badgetui.domain.events import EVENT_SPECS

CLOUD_EVENT_DOC: Final = "Avro Event Format for CloudEvents created with openedx_events/schema"

# §6.1: keys, UUIDs and datetimes travel as strings (`str(key)`, `isoformat()`).
_PRIMITIVES: Final[dict[type, str]] = {
    bool: "boolean",
    int: "long",
    float: "double",
    str: "string",
    bytes: "bytes",
    datetime: "string",
    date: "string",
    UUID: "string",
}


class SchemaError(TypeError):
    """A record field has a type the Avro mapping of §6.1 does not cover."""


class AvroDecodeError(ValueError):
    """The bytes are not one record of the writer schema (the bus entry is malformed)."""


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the bare type, whether None is allowed) of a field annotation."""
    optional = False
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) != 1:
            raise SchemaError(f"unions other than T | None are not supported: {annotation}")
        annotation = args[0]
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


def _type(annotation: Any, defined: set[str]) -> Any:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _record(annotation, defined)
    if annotation in _PRIMITIVES:
        return _PRIMITIVES[annotation]
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation)
        return {"type": "array", "items": _type(item, defined)}
    if origin is dict:
        key, value = get_args(annotation)
        if _unwrap(key)[0] is not str:
            raise SchemaError(f"Avro maps have string keys, not {key!r}")
        return {"type": "map", "values": _type(value, defined)}
    raise SchemaError(f"no Avro type for {annotation!r}")


def _record(model: type[BaseModel], defined: set[str]) -> Any:
    """An inline named record, or a reference by name when this schema already defined it."""
    name = model.__name__
    if name in defined:
        return name
    defined.add(name)
    fields: list[dict[str, Any]] = []
    for field_name, info in model.model_fields.items():
        bare, optional = _unwrap(info.annotation)
        avro_type = _type(bare, defined)
        if optional and info.default is None:
            fields.append({"name": field_name, "type": ["null", avro_type], "default": None})
        elif optional:
            raise SchemaError(f"{name}.{field_name}: a nullable field must default to None")
        else:
            fields.append({"name": field_name, "type": avro_type})
    return {"name": name, "type": "record", "fields": fields}


@cache
def _schema(event_type: str) -> dict[str, Any]:
    spec = EVENT_SPECS.get(event_type)
    if spec is None:
        raise KeyError(f"no Avro schema for event type {event_type}")
    return {
        "name": "CloudEvent",
        "type": "record",
        "doc": CLOUD_EVENT_DOC,
        "fields": [{"name": spec.data_key, "type": _record(spec.record, set())}],
        "namespace": event_type,
    }


def schema_for(event_type: str) -> dict[str, Any]:
    """The Avro schema of an event type, as upstream writes it in its `.avsc` files."""
    return copy.deepcopy(_schema(event_type))


def has_schema(event_type: str) -> bool:
    return event_type in EVENT_SPECS


@cache
def _parsed(event_type: str) -> Any:
    return parse_schema(copy.deepcopy(_schema(event_type)))


def encode(event_type: str, data: dict[str, Any]) -> bytes:
    """Schemaless Avro of an event's data (`{"badge": {...}}`): no header, no schema id.

    The record is validated by its pydantic model first, so defaults are filled and a wrong
    payload fails here rather than producing bytes no reader accepts."""
    spec = EVENT_SPECS[event_type]
    record = spec.record.model_validate(data[spec.data_key]).model_dump(mode="json")
    out = io.BytesIO()
    schemaless_writer(out, _parsed(event_type), {spec.data_key: record})
    return out.getvalue()


def decode(event_type: str, payload: bytes) -> dict[str, Any]:
    """The event's data (`{"course_passing_status": {...}}`) from schemaless Avro.

    Any decoding error and any byte left after the record raise `AvroDecodeError`."""
    data, left = decode_prefix(event_type, payload)
    if left:
        raise AvroDecodeError(f"{left} bytes left after the Avro record")
    return data


def decode_prefix(event_type: str, payload: bytes) -> tuple[dict[str, Any], int]:
    """(the data, how many bytes follow it): a newer minor version appends optional fields
    after the ones we know, and upstream's reader, holding the older schema, reads those and
    stops. Only for entries that say they are newer; the others must fit exactly."""
    if event_type not in EVENT_SPECS:
        raise AvroDecodeError(f"no Avro schema for event type {event_type}")
    stream = io.BytesIO(payload)
    try:
        data = schemaless_reader(stream, _parsed(event_type), None)
    except EOFError:
        raise AvroDecodeError("Avro data ends before the record does") from None
    except UnicodeDecodeError:
        raise AvroDecodeError("Avro string is not valid UTF-8") from None
    except RecursionError:
        raise AvroDecodeError("Avro data nests too deeply") from None
    except Exception as exc:  # fastavro raises many kinds on garbage input
        raise AvroDecodeError(f"Avro data does not fit the schema ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise AvroDecodeError("Avro data is not a record")
    return data, len(payload) - stream.tell()
