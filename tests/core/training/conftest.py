"""Shared fixtures: a small slice of debian-deps-mini and a fast config."""

from __future__ import annotations

from pathlib import Path

import pytest

from elmo_core.data import load_dataset
from elmo_core.training import TrainConfig

MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"


@pytest.fixture(scope="session")
def mini_dataset():
    return load_dataset(MINI, empty_rows="keep")


def _small_config(**overrides) -> TrainConfig:
    """fp8 head, 32-dim TF-IDF encoder, 240 train / 80 test points, 2 epochs of 8 steps, a
    checkpoint at the end of every epoch (the resume tests kill runs between them)."""
    raw = {
        "epochs": 2,
        "checkpoint": {"min_interval_s": 0.0},
        "batch_size": 32,
        "data": {"max_train_points": 240, "max_test_points": 80},
        "encoder": {"dim": 32, "tfidf": {"max_features": 5000}},
        "schedule": {"head_lr": 1.0},
        "log_every": 4,
        "device": "cpu",
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return TrainConfig.model_validate(raw)


@pytest.fixture()
def small_config():
    """A factory of small configs (keyword overrides merge into the sections)."""
    return _small_config
