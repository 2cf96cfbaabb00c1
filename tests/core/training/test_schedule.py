"""Warm-up + decay schedule values."""

from __future__ import annotations

import itertools
import math

import pytest

from elmo_core.training.schedule import lr_factor


def test_warmup_then_cosine_to_min():
    total = 100
    assert lr_factor(0, total, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, total, 0.1, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, total, 0.1, "cosine") == pytest.approx(1.0)
    assert lr_factor(99, total, 0.1, "cosine", 0.2) == pytest.approx(0.2)
    middle = 10 + (99 - 10) / 2
    assert lr_factor(int(middle), total, 0.1, "cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi * int(middle - 10) / 89)), abs=1e-12
    )


def test_linear_and_constant():
    assert lr_factor(99, 100, 0.0, "linear") == pytest.approx(0.0)
    assert lr_factor(50, 100, 0.0, "linear") == pytest.approx(1 - 50 / 99)
    assert lr_factor(70, 100, 0.0, "constant") == 1.0
    values = [lr_factor(s, 50, 0.0, "linear") for s in range(50)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_bad_arguments():
    with pytest.raises(ValueError):
        lr_factor(0, 0, 0.1, "cosine")
    with pytest.raises(ValueError, match="decay"):
        lr_factor(5, 10, 0.0, "step")
