"""Avro schemas built from the event models equal upstream's, and the interop vectors of
openedx-events.md §6.3 decode to the spec payloads and encode back to the same bytes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from badgetui.domain.avro import AvroDecodeError, decode, encode, schema_for
from badgetui.domain.events import (
    BADGE_AWARDED,
    BADGE_REVOKED,
    CCX_COURSE_PASSING,
    COURSE_PASSING,
    EVENT_SPECS,
)

FIXTURES = Path(__file__).parent / "fixtures" / "avro"

LEARNER_42 = {"id": 42, "is_active": True,
              "pii": {"username": "learner42", "email": "learner42@example.org",
                      "name": "Learner 42"}}
COURSE = "course-v1:OpenedX+DemoX+Demo_Course"
V1_DATA = {"course_passing_status": {
    "is_passing": True,
    "course": {"course_key": COURSE, "display_name": "", "start": None, "end": None},
    "user": LEARNER_42}}
V2_DATA = {"course_passing_status": {**V1_DATA["course_passing_status"], "is_passing": False}}
V3_DATA = {"course_passing_status": {
    "is_passing": True, "user": LEARNER_42,
    "course": {"ccx_course_key": "ccx-v1:OpenedX+DemoX+Demo_Course+ccx@1",
               "master_course_key": COURSE, "display_name": "", "coach_email": "",
               "start": None, "end": None, "max_students_allowed": None}}}
V4_DATA = {"badge": {
    "uuid": "3c1e9a52-6d0b-4f3e-9a7c-5b2d8e4f1a60", "user": LEARNER_42,
    "template": {"uuid": "b4f9e2a1-7c3d-4e5f-8a9b-0c1d2e3f4a5b", "origin": "credly",
                 "name": "Demo Course Completion",
                 "description": "Awarded for passing the Open edX Demo course.",
                 "image_url": "https://images.credly.com/images/"
                              "b4f9e2a1-7c3d-4e5f-8a9b-0c1d2e3f4a5b/image.png"}}}
V5_DATA = {"badge": {
    "uuid": "7d3b2c1a-0e9f-4a8b-b6c5-d4e3f2a1b0c9", "user": LEARNER_42,
    "template": {"uuid": "9001", "origin": "accredible", "name": "Data Science 101",
                 "description": None, "image_url": ""}}}

V1 = ("AUZjb3Vyc2UtdjE6T3BlbmVkWCtEZW1vWCtEZW1vX0NvdXJzZQAAAFQBEmxlYXJuZXI0MipsZWFybmVyNDJAZX"
      "hhbXBsZS5vcmcUTGVhcm5lciA0Mg==")
V2 = ("AEZjb3Vyc2UtdjE6T3BlbmVkWCtEZW1vWCtEZW1vX0NvdXJzZQAAAFQBEmxlYXJuZXI0MipsZWFybmVyNDJAZX"
      "hhbXBsZS5vcmcUTGVhcm5lciA0Mg==")
V3 = ("AVQBEmxlYXJuZXI0MipsZWFybmVyNDJAZXhhbXBsZS5vcmcUTGVhcm5lciA0MkxjY3gtdjE6T3BlbmVkWCtEZW"
      "1vWCtEZW1vX0NvdXJzZStjY3hAMUZjb3Vyc2UtdjE6T3BlbmVkWCtEZW1vWCtEZW1vX0NvdXJzZQAAAAAA")
V4 = ("SDNjMWU5YTUyLTZkMGItNGYzZS05YTdjLTViMmQ4ZTRmMWE2MFQBEmxlYXJuZXI0MipsZWFybmVyNDJAZXhhbX"
      "BsZS5vcmcUTGVhcm5lciA0MkhiNGY5ZTJhMS03YzNkLTRlNWYtOGE5Yi0wYzFkMmUzZjRhNWIMY3JlZGx5AixE"
      "ZW1vIENvdXJzZSBDb21wbGV0aW9uAlpBd2FyZGVkIGZvciBwYXNzaW5nIHRoZSBPcGVuIGVkWCBEZW1vIGNvdX"
      "JzZS4CngFodHRwczovL2ltYWdlcy5jcmVkbHkuY29tL2ltYWdlcy9iNGY5ZTJhMS03YzNkLTRlNWYtOGE5Yi0w"
      "YzFkMmUzZjRhNWIvaW1hZ2UucG5n")
V5 = ("SDdkM2IyYzFhLTBlOWYtNGE4Yi1iNmM1LWQ0ZTNmMmExYjBjOVQBEmxlYXJuZXI0MipsZWFybmVyNDJAZXhhbX"
      "BsZS5vcmcUTGVhcm5lciA0Mgg5MDAxFGFjY3JlZGlibGUCIERhdGEgU2NpZW5jZSAxMDEAAgA=")

VECTORS = [
    ("V1", COURSE_PASSING, V1, V1_DATA, 85),
    ("V2", COURSE_PASSING, V2, V2_DATA, 85),
    ("V3", CCX_COURSE_PASSING, V3, V3_DATA, 126),
    ("V4", BADGE_AWARDED, V4, V4_DATA, 279),
    ("V4-revoked", BADGE_REVOKED, V4, V4_DATA, 279),
    ("V5", BADGE_AWARDED, V5, V5_DATA, 119),
]


@pytest.mark.parametrize("event_type", list(EVENT_SPECS))
def test_built_schema_equals_the_upstream_file(event_type):
    path = FIXTURES / f"{event_type.replace('.', '+')}_schema.avsc"
    text = path.read_text(encoding="utf-8")
    assert schema_for(event_type) == json.loads(text)
    # also written the way upstream writes it: same key order, same layout
    assert json.dumps(schema_for(event_type), indent=2) == text


def test_ccx_record_is_in_wire_order():
    record = schema_for(CCX_COURSE_PASSING)["fields"][0]["type"]
    assert [f["name"] for f in record["fields"]] == ["is_passing", "user", "course"]
    plain = schema_for(COURSE_PASSING)["fields"][0]["type"]
    assert [f["name"] for f in plain["fields"]] == ["is_passing", "course", "user"]


@pytest.mark.parametrize(("name", "event_type", "b64", "data", "size"), VECTORS,
                         ids=[v[0] for v in VECTORS])
def test_interop_vector_decodes_and_reencodes(name, event_type, b64, data, size):
    raw = base64.b64decode(b64)
    assert len(raw) == size
    assert decode(event_type, raw) == data
    assert encode(event_type, data) == raw


def test_defaults_are_filled_before_encoding():
    sparse = {"course_passing_status": {"is_passing": True, "course": {"course_key": COURSE},
                                        "user": LEARNER_42}}
    assert encode(COURSE_PASSING, sparse) == base64.b64decode(V1)


def test_v2_differs_from_v1_in_its_first_byte_only():
    v1, v2 = base64.b64decode(V1), base64.b64decode(V2)
    assert v1[0] == 1 and v2[0] == 0 and v1[1:] == v2[1:]


@pytest.mark.parametrize(("event_type", "raw"), [
    (CCX_COURSE_PASSING, base64.b64decode(V1)),       # V1 read with the CCX schema
    (COURSE_PASSING, base64.b64decode(V1)[:-1]),      # V1 without its last byte
    (COURSE_PASSING, base64.b64decode(V3)),           # V3 read with the ordinary schema
    (COURSE_PASSING, base64.b64decode(V1) + b"\x00"),  # a byte left over
    (BADGE_AWARDED, base64.b64decode(V1)),
    (COURSE_PASSING, b""),
    (COURSE_PASSING, b"\x01\x46" + b"\xff" * 35 + base64.b64decode(V1)[37:]),  # bad UTF-8
    ("org.openedx.learning.course.persistent_grade_summary.changed.v1", base64.b64decode(V1)),
], ids=["v1-as-ccx", "v1-truncated", "v3-as-course", "leftover", "v1-as-badge", "empty",
        "bad-utf8", "unknown-type"])
def test_negative_vectors_are_malformed(event_type, raw):
    with pytest.raises(AvroDecodeError):
        decode(event_type, raw)
