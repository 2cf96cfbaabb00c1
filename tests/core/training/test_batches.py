"""Epoch batches (length-bucketed for token inputs) and the background prefetch."""

from __future__ import annotations

import numpy as np
import pytest

from elmo_core.training import batches as batches_module
from elmo_core.training.batches import epoch_batches, prefetch


def _padded_tokens(batches: list[np.ndarray], lengths: np.ndarray) -> int:
    return sum(len(b) * int(lengths[b].max()) for b in batches)


@pytest.mark.parametrize("with_lengths", [False, True])
def test_every_point_once_only_the_last_batch_short_and_deterministic(with_lengths):
    lengths = np.random.default_rng(0).integers(5, 128, 1000) if with_lengths else None
    got = epoch_batches(7, 2, 1000, 64, lengths)
    assert np.array_equal(np.sort(np.concatenate(got)), np.arange(1000))
    assert [len(b) for b in got] == [64] * 15 + [40]
    again = epoch_batches(7, 2, 1000, 64, lengths)
    assert all(np.array_equal(a, b) for a, b in zip(got, again, strict=True))
    other = epoch_batches(7, 3, 1000, 64, lengths)
    assert not all(np.array_equal(a, b) for a, b in zip(got, other, strict=True))


def test_bucketing_cuts_padding_and_keeps_the_epoch_random(monkeypatch):
    monkeypatch.setattr(batches_module, "BUCKET_WINDOW", 8)
    lengths = np.random.default_rng(1).integers(5, 128, 4096)
    plain = epoch_batches(0, 0, 4096, 32, None)
    bucketed = epoch_batches(0, 0, 4096, 32, lengths)
    assert _padded_tokens(bucketed, lengths) < 0.75 * _padded_tokens(plain, lengths)
    # batches are not in length order: the order of batch lengths is shuffled
    maxima = np.array([lengths[b].max() for b in bucketed[:-1]])
    assert np.mean(np.diff(maxima) > 0) == pytest.approx(0.5, abs=0.1)


def test_prefetch_yields_in_order_and_raises_at_the_failing_step():
    assert list(prefetch(lambda s: s * s, range(10), depth=3)) == [s * s for s in range(10)]

    def make(step: int) -> int:
        if step == 4:
            raise ValueError("bad step 4")
        return step

    seen = []
    with pytest.raises(ValueError, match="bad step 4"):
        for value in prefetch(make, range(10), depth=2):
            seen.append(value)
    assert seen == [0, 1, 2, 3]
