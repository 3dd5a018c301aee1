"""Reading a line-oriented file in constant memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
_SKIP_CHUNK = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LineError:
    """A refused line of an import file: its number and why (both importers report these)."""

    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


def iter_lines(stream: BinaryIO, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """``(line_number, content)`` for every non-blank line of ``stream``, numbered from 1.

    Reads one line at a time: memory stays bounded by ``max_line_bytes`` whatever
    the file size. A longer line is skipped without being held in memory and comes
    out as ``(line_number, None)``. A UTF-8 byte-order mark on the first line is dropped.
    """
    number = 0
    while True:
        line = stream.readline(max_line_bytes + 1)
        if not line:
            return
        number += 1
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            while True:  # drop the rest of the overlong line, a chunk at a time
                rest = stream.readline(_SKIP_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        if line.strip():
            yield number, line
