"""Reader for JSON lines: one `{"text": "...", "labels": ["name", ...]}` object per line.

A path is either one `.jsonl` file (train only) or a directory with `train.jsonl` and optionally
`test.jsonl`. Label names of both splits are sorted; label id i is the i-th name, and the names are
the label texts. Other keys of an object are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from elmo_core.data.dataset import XMCSplit
from elmo_core.data.rows import LoadedSplit
from elmo_core.data.textio import decode, read_bytes, split_lines
from elmo_core.errors import DatasetFormatError


def read_jsonl(path: Path) -> tuple[int, list[LoadedSplit], list[str]]:
    """Read a JSONL file or directory: (num_labels, [train, test?] splits, label names)."""
    files = [path / "train.jsonl"] if path.is_dir() else [path]
    if path.is_dir() and (path / "test.jsonl").exists():
        files.append(path / "test.jsonl")
    records = [_read_records(f) for f in files]
    names = sorted({name for texts, labels in records for row in labels for name in row})
    ids = {name: i for i, name in enumerate(names)}
    splits = []
    for file, (texts, labels) in zip(files, records, strict=True):
        counts = np.fromiter((len(row) for row in labels), dtype=np.int64, count=len(labels))
        indptr = np.zeros(len(labels) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.fromiter(
            (ids[name] for row in labels for name in row), dtype=np.int64, count=int(indptr[-1])
        )
        matrix = sp.csr_matrix(
            (np.ones(indices.size, np.float32), indices, indptr), shape=(len(labels), len(names))
        )
        matrix.sort_indices()
        splits.append(LoadedSplit(XMCSplit(labels=matrix, texts=texts), str(file), 1))
    return len(names), splits, names


def _read_records(path: Path) -> tuple[list[str], list[list[str]]]:
    file = str(path)
    lines = split_lines(decode(read_bytes(path), file))
    texts: list[str] = []
    labels: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(
                file, number, f"invalid JSON: {exc.msg} at column {exc.colno}"
            ) from None
        text, names = _check_record(record, file, number)
        texts.append(text)
        labels.append(names)
    return texts, labels


def _check_record(record: object, file: str, number: int) -> tuple[str, list[str]]:
    if not isinstance(record, dict):
        raise DatasetFormatError(file, number, f"expected a JSON object, got {_kind(record)}")
    for key in ("text", "labels"):
        if key not in record:
            raise DatasetFormatError(file, number, f"missing key {key!r}")
    text, names = record["text"], record["labels"]
    if not isinstance(text, str):
        raise DatasetFormatError(file, number, f"'text' must be a string, got {_kind(text)}")
    if not isinstance(names, list):
        raise DatasetFormatError(file, number, f"'labels' must be a list, got {_kind(names)}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise DatasetFormatError(
                file, number, f"label names must be non-empty strings, got {name!r}"
            )
    if len(set(names)) != len(names):
        duplicate = next(n for i, n in enumerate(names) if n in names[:i])
        raise DatasetFormatError(file, number, f"duplicate label {duplicate!r}")
    return text, names


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
