"""Training faults in the trainer itself: a diverging run (absurd learning rates make the loss and
the weights NaN/Inf) stops with `TrainingDiverged` naming what went non-finite, and never writes
a checkpoint or model of the diverged state. (The worker turns it into a failed job:
test_service_faults.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_stack import MINI

from elmo_core.data import load_dataset
from elmo_core.training import TrainingDiverged, parse_config, train


@pytest.fixture(scope="module")
def mini():
    return load_dataset(MINI, empty_rows="keep")


def _config(log_every: int, **schedule: float):
    return parse_config(
        {
            "device": "cpu",
            "epochs": 3,
            "batch_size": 32,
            "threads": 1,
            "log_every": log_every,
            "encoder": {"dim": 32},
            "data": {"max_train_points": 256, "max_test_points": 64},
            "schedule": schedule,
        }
    )


@pytest.mark.parametrize(
    ("log_every", "schedule", "names"),
    [
        # The loss is computed every step: its first NaN/Inf stops the run at once.
        (1, {"encoder_lr": 1e30, "head_lr": 1e30}, "non-finite loss"),
        # The loss is never logged: the end-of-epoch weight check catches the corrupted weights.
        (1000, {"encoder_lr": 1e30, "head_lr": 1e30}, "non-finite values in weight"),
        # Encoder weights overflow to Inf (AdamW steps of ~lr each).
        (1000, {"encoder_lr": 1e38}, "non-finite values in weight encoder.embedding.weight"),
    ],
)
def test_divergence_is_reported(mini, tmp_path: Path, log_every, schedule, names) -> None:
    with pytest.raises(TrainingDiverged) as raised:
        train(_config(log_every, **schedule), mini, tmp_path)
    err = raised.value
    assert names in str(err) and str(err).startswith("training diverged: ")
    assert err.epoch == 1 and 0 < err.step <= 8
    # Nothing of the diverged state is kept: no checkpoint, no model.
    assert not (tmp_path / "checkpoints" / "latest.json").exists()
    assert not (tmp_path / "model").exists()


def test_sane_learning_rate_does_not_trip_the_check(mini, tmp_path: Path) -> None:
    result = train(_config(1), mini, tmp_path)  # loss checked on every step, weights each epoch
    assert result.last_metrics is not None and result.last_metrics["P@1"] > 0
    pointer = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == result.steps
