"""Readers for the Extreme Classification Repository's sparse matrix and filter files.

`*_X_Y.txt` (header `num_points num_labels`), `*_X_Xf.txt` (header `num_points num_features`),
then one `id:value ...` line per row; `*_filter_labels.txt` holds `row label` pairs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from elmo_core.data.pairs_fast import parse_pairs_fast
from elmo_core.data.sparse import build_csr, check_id, parse_pairs
from elmo_core.data.textio import (
    count_lines,
    decode,
    iter_line_ranges,
    parse_header,
    read_bytes,
    split_header,
    split_lines,
)
from elmo_core.errors import DatasetFormatError

_PAIR_LINE_RE = re.compile(r"[ \t]*[0-9]+[ \t]+[0-9]+[ \t]*")


def read_sparse_matrix(path: Path, names: tuple[str, str], what: str) -> sp.csr_matrix:
    """Read a header `N C` then N rows of `id:value` pairs with ids < C (`what` names the ids).

    Each chunk goes through the byte-level fast path first; a chunk it declines (an unusual
    spelling or a defect) is decoded and parsed by the general parser, which names the bad line.
    """
    file = str(path)
    data = read_bytes(path)
    header, start = split_header(data, file)
    num_rows, num_cols = parse_header(header, names, file)
    view = memoryview(data)
    counts, ids, values = [], [], []
    rows_seen = 0
    for begin, stop in iter_line_ranges(data, start):
        first_line = 2 + rows_seen
        rows_seen += data.count(b"\n", begin, stop) + (data[stop - 1] != ord("\n"))
        if rows_seen > num_rows:
            break
        parsed = parse_pairs_fast(view[begin:stop], num_cols)
        if parsed is None:
            text = decode(view[begin:stop], file, first_line)
            lines = split_lines(text)
            parsed = parse_pairs(lines, text, first_line, file, num_cols, what)
        counts.append(parsed[0])
        ids.append(parsed[1])
        values.append(parsed[2])
    if rows_seen != num_rows:
        actual = count_lines(data, start)
        raise DatasetFormatError(file, 1, f"header says {num_rows} rows but the file has {actual}")
    return build_csr(counts, ids, values, num_cols)


def read_filter_pairs(path: Path, num_rows: int, num_labels: int) -> np.ndarray:
    """Read `row label` pairs (0-based); a missing file means none, an empty file is allowed."""
    if not path.exists():
        return np.zeros((0, 2), dtype=np.int64)
    file = str(path)
    data = path.read_bytes()
    text = decode(data, file)
    lines = split_lines(text)
    if not all(map(_PAIR_LINE_RE.fullmatch, lines)):
        row = next(i for i, line in enumerate(lines) if not _PAIR_LINE_RE.fullmatch(line))
        raise DatasetFormatError(file, row + 1, _diagnose(lines[row], num_rows, num_labels))
    if not lines:
        return np.zeros((0, 2), dtype=np.int64)
    numbers = np.fromstring(text, sep=" ").reshape(-1, 2)  # float64: compare before the cast
    bad = np.flatnonzero((numbers[:, 0] >= num_rows) | (numbers[:, 1] >= num_labels))
    if bad.size:
        row = int(bad[0])
        raise DatasetFormatError(file, row + 1, _diagnose(lines[row], num_rows, num_labels))
    return numbers.astype(np.int64)


def _diagnose(line: str, num_rows: int, num_labels: int) -> str:
    fields = line.split()
    if len(fields) != 2:
        return f"expected 'row label' (two integers), got {line[:80]!r}"
    return (
        check_id(fields[0], num_rows, "row")
        or check_id(fields[1], num_labels, "label")
        or f"malformed line {line[:80]!r}"
    )
