"""The byte-level fast path for `id:value` rows agrees with the general parser, or declines."""

from __future__ import annotations

import numpy as np
import pytest

from elmo_core.data.pairs_fast import parse_pairs_fast
from elmo_core.data.sparse import parse_pairs
from elmo_core.errors import DatasetFormatError

BOUND = 50


def _general(chunk: bytes, bound: int = BOUND) -> tuple[np.ndarray, ...] | None:
    text = chunk.decode()
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    try:
        return parse_pairs(lines, text, 2, "f", bound, "label")
    except DatasetFormatError:
        return None


def _assert_same(fast: tuple[np.ndarray, ...], general: tuple[np.ndarray, ...]) -> None:
    for mine, theirs in zip(fast, general, strict=True):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)
        assert mine.tobytes() == theirs.tobytes()  # bit for bit, values included


@pytest.mark.parametrize(
    "chunk",
    [
        b"1:1\n0:1 3:0.5\n",
        b"1:1.00000 2:1.00000\n4:1.00000\n",
        b"\n\n7:1\n\n",  # empty rows, first and last
        b"1:1\n2:1",  # no final newline
        b"9:1 3:2 5:3\n",  # unsorted: sorted with its values
        b"0:0.1 1:.5 2:3. 3:0 4:007 005:123456789012345 6:0.00000000000001\n",
        b"49:99999.9999\n",
        b"\n",
    ],
)
def test_usual_spellings_take_the_fast_path_and_match(chunk: bytes) -> None:
    fast = parse_pairs_fast(chunk, BOUND)
    general = _general(chunk)
    assert fast is not None and general is not None
    _assert_same(fast, general)


@pytest.mark.parametrize(
    "chunk",
    [
        b"1:1\t2:1\n",  # tab
        b"1:1\r\n",  # CRLF
        b" 1:1\n",  # leading space
        b"1:1 \n",  # trailing space
        b"1:1  2:1\n",  # two spaces
        b"1:+1\n",
        b"1:1e-3\n",
        b"1:-1\n",
        b"1:1.0.0\n",
        b"1.5:1\n",
        b"1:1:1\n",
        b"1\n",
        b":1\n",
        b"1:\n",
        b"1:.\n",
        b"50:1\n",  # id out of range
        b"3:1 3:2\n",  # duplicate id
        b"1234567890:1\n",  # a 10-digit id
        b"1:1234567890123456\n",  # a 16-digit value
        "1:1 ü\n".encode(),
    ],
)
def test_other_spellings_and_defects_are_declined(chunk: bytes) -> None:
    assert parse_pairs_fast(chunk, BOUND) is None


def test_random_chunks_agree_with_the_general_parser() -> None:
    """Random rows over a small alphabet: whenever the fast path answers, it is the general
    parser's answer; whenever the general parser rejects a chunk, the fast path declines."""
    rng = np.random.default_rng(0)
    ids = ["0", "7", "12", "49", "005", "50"]
    values = ["1", "1.0", "0.25", ".5", "3.", "1e2", "-1", ""]
    seps, weights = [" ", "\n", "\n\n", "  ", "\t", ":"], [0.6, 0.3, 0.04, 0.02, 0.02, 0.02]
    answered = declined_valid = 0
    for _ in range(3000):
        pieces = []
        for _ in range(int(rng.integers(1, 12))):
            value = rng.choice(values, p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.04, 0.03, 0.03])
            pieces.append(f"{rng.choice(ids, p=[0.196] * 5 + [0.02])}:{value}")
            pieces.append(str(rng.choice(seps, p=weights)))
        chunk = "".join(pieces[:-1]).encode() + b"\n"
        fast = parse_pairs_fast(chunk, BOUND)
        general = _general(chunk)
        if fast is not None:
            assert general is not None, chunk
            _assert_same(fast, general)
            answered += 1
        elif general is not None:
            declined_valid += 1
    assert answered > 500 and declined_valid > 100  # both paths were exercised
