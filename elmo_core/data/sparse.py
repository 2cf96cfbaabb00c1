"""Parsing rows of `id:value` pairs (label and feature matrices) straight into CSR arrays.

The fast path checks every line against a regular expression and converts the numbers of a whole
chunk at once with numpy, so no Python object is made per pair. When a check fails, the offending
line is parsed again token by token to say exactly what is wrong.
"""

from __future__ import annotations

import math
import re

import numpy as np
import scipy.sparse as sp

from elmo_core.errors import DatasetFormatError

_VAL = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_PAIR = rf"[0-9]+:{_VAL}"
PAIRS_LINE_RE = re.compile(rf"[ \t]*(?:{_PAIR}(?:[ \t]+{_PAIR})*)?[ \t]*")
VALUE_RE = re.compile(_VAL)
_UINT_RE = re.compile(r"[0-9]+")
_NEG_INT_RE = re.compile(r"-[0-9]+")
_SEP_RE = re.compile(r"[ \t]+")
_NONFINITE = {"nan", "inf", "infinity"}
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_id(token: str, bound: int, what: str) -> str | None:
    """Reason why `token` is not an integer id in [0, bound), or None if it is one."""
    if _UINT_RE.fullmatch(token):
        value = int(token)
        if value >= bound:
            return f"{what} id {value} out of range: must be < {bound}"
        return None
    if _NEG_INT_RE.fullmatch(token):
        return f"negative {what} id {token}"
    if VALUE_RE.fullmatch(token):
        return f"non-integer {what} id {token!r}"
    return f"malformed {what} id {token!r}"


def check_value(token: str, context: str) -> str | None:
    """Reason why `token` is not a decimal number that fits float32, or None if it is one."""
    if not VALUE_RE.fullmatch(token):
        if token.lower().lstrip("+-") in _NONFINITE:
            return f"non-finite value {token!r} in {context!r}"
        return f"malformed value {token!r} in {context!r}"
    value = float(token)
    if not math.isfinite(value):
        return f"non-finite value {token!r} in {context!r} (overflows)"
    if abs(value) > FLOAT32_MAX:
        return f"value {token!r} in {context!r} is out of float32 range"
    return None


def diagnose_pairs(line: str, bound: int, what: str) -> str:
    """Say what is wrong with a line of `id:value` pairs that the fast path rejected."""
    seen: set[int] = set()
    stripped = line.strip(" \t")
    for token in _SEP_RE.split(stripped) if stripped else []:
        id_text, colon, value_text = token.partition(":")
        if not colon or ":" in value_text:
            return f"malformed '{what}_id:value' pair {token!r}"
        reason = check_id(id_text, bound, what) or check_value(value_text, token)
        if reason:
            return reason
        ident = int(id_text)
        if ident in seen:
            return f"duplicate {what} id {ident}"
        seen.add(ident)
    return f"malformed line {line[:80]!r}"


def parse_pairs(
    lines: list[str], text: str, first_line: int, file: str, bound: int, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse lines of `id:value` pairs (`text` is the lines joined by newlines).

    Returns per-row counts (int64), ids (int32, sorted within each row) and values (float32).
    Raises DatasetFormatError at the first bad line: malformed pair, negative or non-integer id,
    id >= bound, NaN/inf value or one beyond float32, duplicate id in a row.
    """
    if not all(map(PAIRS_LINE_RE.fullmatch, lines)):
        row = next(i for i, line in enumerate(lines) if not PAIRS_LINE_RE.fullmatch(line))
        raise DatasetFormatError(file, first_line + row, diagnose_pairs(lines[row], bound, what))
    counts = np.fromiter((line.count(":") for line in lines), dtype=np.int64, count=len(lines))
    total = int(counts.sum())
    if total == 0:
        return counts, np.zeros(0, np.int32), np.zeros(0, np.float32)
    numbers = np.fromstring(text.replace(":", " "), sep=" ")
    ids = numbers[0::2]
    values = numbers[1::2]
    rows = np.repeat(np.arange(len(lines), dtype=np.int64), counts)
    bad = (ids >= bound) | ~(np.abs(values) <= FLOAT32_MAX)
    if bad.any():
        _raise_first(lines, int(rows[bad].min()), first_line, file, bound, what)
    keys = rows * bound + ids.astype(np.int64)
    if not np.all(keys[1:] > keys[:-1]):
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        dup = np.flatnonzero(keys[1:] == keys[:-1])
        if dup.size:
            _raise_first(lines, int(rows[order[dup + 1]].min()), first_line, file, bound, what)
        ids = ids[order]
        values = values[order]
    return counts, ids.astype(np.int32), values.astype(np.float32)


def _raise_first(lines: list[str], row: int, first_line: int, file: str, bound: int, what: str):
    raise DatasetFormatError(file, first_line + row, diagnose_pairs(lines[row], bound, what))


def build_csr(
    counts: list[np.ndarray], ids: list[np.ndarray], values: list[np.ndarray], num_cols: int
) -> sp.csr_matrix:
    """Assemble per-chunk parse results into one float32 CSR matrix with sorted indices."""
    row_counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    indptr = np.zeros(row_counts.size + 1, dtype=np.int64)
    np.cumsum(row_counts, out=indptr[1:])
    index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix(
        (
            np.concatenate(values) if values else np.zeros(0, np.float32),
            (np.concatenate(ids) if ids else np.zeros(0, np.int32)).astype(index_dtype),
            indptr.astype(index_dtype),
        ),
        shape=(row_counts.size, num_cols),
    )
    matrix.has_sorted_indices = True
    return matrix
