"""Bounded reading of JSON Lines input (`badgetui events ingest FILE|-`).

Why not iterate a text file: Python reads a whole line into memory however long it is, so a
1 GB file without a newline becomes a 1 GB string (and more while it is decoded); and decoding
with `errors="replace"` alters text silently, so a learner's name with one bad byte would be
stored as another name. This reader reads bytes with a bounded `readline` and never holds
more than `MAX_LINE` bytes of one line: a longer line is one bad line, read on up to its
newline in `CHUNK`-sized pieces that are dropped at once. Each line is decoded strictly as
UTF-8; one that is not valid UTF-8 is one bad line saying where its first bad byte is. Either
way the rest of the input goes on.

Lines end at `\\n` (JSON Lines); a `\\r` before it (CRLF files) is dropped, and so is a UTF-8
byte order mark at the start of the input. Every line read yields exactly one item, so the
caller numbers lines by counting items (starting at 1).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

#: Longest line accepted, in bytes without its newline.
MAX_LINE: Final = 16 * 1024 * 1024
#: Bytes read at a time while skipping the rest of a line that is too long.
CHUNK: Final = 1024 * 1024
#: Bytes of a bad line kept (escaped) for the intake log.
PREVIEW: Final = 2000


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is no text to parse: why, and its start for the log (bytes escaped)."""

    reason: str
    preview: str = ""


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit:,} bytes"


def _preview(data: bytes | memoryview) -> str:
    return bytes(data[:PREVIEW]).decode("utf-8", "backslashreplace")


def _decode(line: memoryview, first: bool) -> str | BadLine:
    """A line (without its newline) as text; memoryviews, so that no slice copies it."""
    data = line[:-1] if line[-1:] == b"\r" else line
    if first and data[:3] == codecs.BOM_UTF8:
        data = data[3:]
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError as exc:
        where = exc.start + 1
        what = f"byte {where} is 0x{data[exc.start]:02x}"
        if exc.reason == "unexpected end of data":
            what = f"it ends inside a character at byte {where}"
        return BadLine(f"line is not valid UTF-8 ({what})", _preview(data))


def read_lines(stream: BinaryIO, *, max_line: int = MAX_LINE, chunk: int = CHUNK
               ) -> Iterator[str | BadLine]:
    """Each line of a binary stream as text, or as a `BadLine` (too long, not UTF-8).

    `readline` with a size never returns more than `max_line + 2` bytes (the line, a CR and
    its newline); a longer line is read on in pieces of `chunk` bytes up to its newline,
    each dropped at once. Nothing of a line is held while the caller works on it."""
    too_long = f"line is longer than {_size(max_line)}"
    first = True
    while line := stream.readline(max_line + 2):
        ended = line.endswith(b"\n")
        with memoryview(line) as view:
            body = view[:-1] if ended else view
            if len(body) - (body[-1:] == b"\r") > max_line:
                item: str | BadLine = BadLine(too_long, _preview(body))
            else:
                item = _decode(body, first)
            body.release()
        del line
        if isinstance(item, BadLine) and item.reason == too_long:
            while not ended and (piece := stream.readline(chunk)):
                ended = piece.endswith(b"\n")
        first = False
        yield item
        del item
