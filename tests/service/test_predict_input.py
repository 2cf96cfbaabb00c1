"""Parsing the texts of a batch inference upload: JSONL or plain text, errors name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from elmo_core.errors import DatasetFormatError
from service.api.routes.predict_jobs import read_texts


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_jsonl_objects_strings_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", b'\xef\xbb\xbf{"text": "a b"}\n\n"c"\n{"text": "d\\ne"}\n')
    assert read_texts(path, "t.jsonl", 100) == ["a b", "c", "d\ne"]


def test_plain_text_lines(tmp_path: Path) -> None:
    assert read_texts(write(tmp_path, "t.txt", b"one\r\ntwo\n"), "t.txt", 100) == ["one", "two"]


@pytest.mark.parametrize(
    ("name", "data", "line", "reason"),
    [
        ("t.jsonl", b'{"text": "a"}\n{"text": 3}\n', 2, "expected"),
        ("t.jsonl", b'{"text": "a"}\n{oops\n', 2, "invalid JSON"),
        ("t.txt", b"fine\n\xff\xfe\n", 2, "not UTF-8"),
        ("t.txt", b"short\n" + b"x" * 101 + b"\n", 2, "limit 100"),
        ("t.txt", b"\n\n", 0, "no texts"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, name: str, data: bytes, line: int, reason: str):
    with pytest.raises(DatasetFormatError, match=reason) as info:
        read_texts(write(tmp_path, name, data), name, 100)
    assert (info.value.file, info.value.line) == (name, line)
