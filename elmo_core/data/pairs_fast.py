"""A fast path for rows of `id:value` pairs in their usual spelling, working on bytes with numpy.

Label and feature files are nearly always written the same way: ASCII, `id:value` pairs
separated by single spaces, `\\n` line ends, unsigned decimal values (`1`, `1.00000`, `.5`).
`parse_pairs_fast` checks that a chunk is spelled exactly so with a few whole-array operations
(one byte-class lookup, the positions of separators, colons and dots) and converts the numbers
digit column by digit column, with no Python object per line or per pair. Anything else (tabs,
`\\r`, signs, exponents, long numbers, ids out of range, duplicates, bad bytes) returns None and
the caller uses the general parser (`sparse.parse_pairs`), which accepts every valid spelling and
names the line and the defect. So the fast path changes speed only, never results or errors.
"""

from __future__ import annotations

import numpy as np

_DIGIT, _COLON, _DOT, _SPACE, _NEWLINE, _OTHER = range(6)
_CLASSES = np.full(256, _OTHER, dtype=np.uint8)
_CLASSES[ord("0") : ord("9") + 1] = _DIGIT
_CLASSES[ord(":")] = _COLON
_CLASSES[ord(".")] = _DOT
_CLASSES[ord(" ")] = _SPACE
_CLASSES[ord("\n")] = _NEWLINE

MAX_ID_DIGITS = 9
"""Longer ids go to the general parser (they are out of int32 range or zero-padded oddly)."""
MAX_VALUE_DIGITS = 15
"""Values of at most 15 digits are exact in float64 before the division by a power of ten, so
the result is the correctly rounded value, as the general parser's strtod gives."""
_POWERS_OF_TEN = np.array([float(10**k) for k in range(MAX_VALUE_DIGITS + 1)])

Parsed = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Per-row counts (int64), ids (int32, sorted within each row), values (float32)."""


def parse_pairs_fast(chunk: bytes | memoryview, bound: int) -> Parsed | None:
    """Parse whole lines of `id:value` pairs with ids < `bound`, or return None when the chunk
    is not in the usual spelling or has a defect (see the module docstring).

    A last line without its `\\n` counts as a line. Rows may be empty and unsorted.
    """
    data = np.frombuffer(chunk, dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    if data[-1] != ord("\n"):
        data = np.append(data, np.uint8(ord("\n")))
    separators = np.flatnonzero((data == ord(" ")) | (data == ord("\n")))
    colons = np.flatnonzero(data == ord(":"))
    dots = np.flatnonzero(data == ord("."))
    digits = np.count_nonzero(data - np.uint8(ord("0")) < 10)  # uint8: bytes below "0" wrap
    if digits + separators.size + colons.size + dots.size != data.size:
        return None  # some other byte
    ends_line = data[separators] == ord("\n")
    starts = np.empty_like(separators)
    starts[0] = 0
    starts[1:] = separators[:-1] + 1
    empty = starts == separators
    if empty.any():
        # an empty token is only allowed as an empty line: a line end right after another one
        after_line_end = np.ones_like(ends_line)
        after_line_end[1:] = ends_line[:-1]
        if not np.all(ends_line[empty] & after_line_end[empty]):
            return None
        tokens = np.flatnonzero(~empty)
        token_starts = starts[tokens]
        token_ends = separators[tokens]
    else:
        tokens, token_starts, token_ends = np.arange(separators.size), starts, separators
    # the k-th colon inside the k-th token for every k: one colon per token, digits on both sides
    if colons.size != tokens.size or not (
        np.all(colons > token_starts) and np.all(colons + 1 < token_ends)
    ):
        return None
    int_ends = token_ends
    fraction_lengths = np.zeros(tokens.size, dtype=np.int64)
    if dots.size:
        if dots.size == tokens.size:  # the usual case: one dot in every value
            dot_tokens = np.arange(tokens.size)
        else:
            dot_tokens = np.searchsorted(token_ends, dots)
            if np.any(dot_tokens[1:] == dot_tokens[:-1]):
                return None  # two dots in one value
        if not (np.all(dots > colons[dot_tokens]) and np.all(dots < token_ends[dot_tokens])):
            return None  # a dot in an id
        int_ends = token_ends.copy()
        int_ends[dot_tokens] = dots
        fraction_lengths[dot_tokens] = token_ends[dot_tokens] - dots - 1
    id_lengths = colons - token_starts
    int_lengths = int_ends - colons - 1
    value_digits = int_lengths + fraction_lengths
    if tokens.size and (
        id_lengths.max() > MAX_ID_DIGITS
        or value_digits.max() > MAX_VALUE_DIGITS
        or value_digits.min() < 1
    ):
        return None
    ids = _decimal(data, colons, id_lengths)
    if tokens.size and ids.max() >= bound:
        return None
    mantissas = _decimal(data, int_ends, int_lengths) * 10**fraction_lengths + _decimal(
        data, token_ends, fraction_lengths
    )
    values = mantissas / _POWERS_OF_TEN[fraction_lengths]

    line_ends_before = np.cumsum(ends_line) - ends_line
    rows = line_ends_before[tokens]
    counts = np.bincount(rows, minlength=int(np.count_nonzero(ends_line)))
    keys = rows * bound + ids
    if not np.all(keys[1:] > keys[:-1]):
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        if np.any(keys[1:] == keys[:-1]):
            return None  # a duplicate id in a row
        ids = ids[order]
        values = values[order]
    return counts.astype(np.int64), ids.astype(np.int32), values.astype(np.float32)


def _decimal(data: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The unsigned decimal numbers whose `lengths` digits end (exclusive) at `ends`.

    Column by column from the most significant; positions before a short number's first digit
    may index anything in `data` (even wrap around), their digits are masked out.
    """
    values = np.zeros(ends.size, dtype=np.int64)
    if not ends.size:
        return values
    shortest, width = int(lengths.min()), int(lengths.max())
    for offset in range(width, 0, -1):
        digit = data[ends - offset] - np.uint8(ord("0"))
        if offset > shortest:
            digit = np.where(lengths >= offset, digit, np.uint8(0))
        values *= 10
        values += digit
    return values
