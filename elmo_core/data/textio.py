"""Reading dataset files as bytes and UTF-8 lines, with errors that name the file and line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elmo_core.errors import DatasetFormatError

CHUNK_BYTES = 8 << 20
"""Size of the pieces a large file is decoded and parsed in (cut at line ends)."""

_UINT_RE = re.compile(r"[0-9]+")


def read_bytes(path: Path) -> bytes:
    """Return the whole file; a missing, unreadable or empty file raises DatasetFormatError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetFormatError(str(path), 0, "file not found") from None
    except IsADirectoryError:
        raise DatasetFormatError(str(path), 0, "is a directory, expected a file") from None
    except OSError as exc:
        raise DatasetFormatError(str(path), 0, f"cannot read: {exc.strerror}") from None
    if not data:
        raise DatasetFormatError(str(path), 0, "file is empty")
    return data


def decode(data: bytes | memoryview, file: str, first_line: int = 1) -> str:
    """Decode UTF-8 (dropping a leading byte-order mark and `\\r` of `\\r\\n`).

    Invalid bytes raise DatasetFormatError at the line they sit on.
    """
    raw = bytes(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + raw.count(b"\n", 0, exc.start)
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        raise DatasetFormatError(
            file, line, f"not valid UTF-8: byte 0x{byte:02x} at column {column}"
        ) from None
    if first_line == 1 and text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte-order mark, as some editors write
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def split_lines(text: str) -> list[str]:
    """Split on '\\n' only (texts may contain other Unicode line breaks); drop the final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 text file (one record per line), decoded chunk by chunk."""
    lines: list[str] = []
    for chunk in iter_chunks(read_bytes(path), 0, str(path), first_line=1):
        lines.extend(chunk.lines)
    return lines


@dataclass
class Chunk:
    """A run of consecutive lines of a file: its decoded text, its lines, the first line number."""

    first_line: int
    text: str
    lines: list[str]


def iter_chunks(data: bytes, start: int, file: str, first_line: int) -> Iterator[Chunk]:
    """Yield the lines of `data[start:]` in pieces of about CHUNK_BYTES, cut at line ends."""
    view = memoryview(data)
    line = first_line
    for begin, stop in iter_line_ranges(data, start):
        text = decode(view[begin:stop], file, line)
        lines = split_lines(text)
        yield Chunk(line, text, lines)
        line += len(lines)


def iter_line_ranges(data: bytes, start: int) -> Iterator[tuple[int, int]]:
    """Yield (begin, stop) byte ranges that cover `data[start:]` in pieces of about CHUNK_BYTES,
    each ending just after a `\n` (or at the end of the data)."""
    end_of_data = len(data)
    while start < end_of_data:
        stop = min(start + CHUNK_BYTES, end_of_data)
        if stop < end_of_data:
            cut = data.rfind(b"\n", start, stop)
            if cut < 0:  # a single line longer than a chunk
                cut = data.find(b"\n", stop)
            stop = end_of_data if cut < 0 else cut + 1
        yield start, stop
        start = stop


def count_lines(data: bytes, start: int) -> int:
    """Number of lines in `data[start:]` (a last line without a newline counts)."""
    if start >= len(data):
        return 0
    return data.count(b"\n", start) + (0 if data.endswith(b"\n") else 1)


def split_header(data: bytes, file: str) -> tuple[str, int]:
    """Return the first line (decoded) and the byte offset where the second line starts."""
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    header = decode(data[:end], file).strip()
    return header, end + 1


def parse_header(header: str, names: tuple[str, ...], file: str) -> tuple[int, ...]:
    """Parse a header of len(names) non-negative integers, e.g. `num_points num_labels`."""
    fields = header.split()
    if len(fields) != len(names) or not all(_UINT_RE.fullmatch(f) for f in fields):
        expected = " ".join(names)
        raise DatasetFormatError(file, 1, f"malformed header {header!r}: expected '{expected}'")
    return tuple(int(f) for f in fields)
