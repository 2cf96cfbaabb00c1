"""Training faults in the trainer itself: a diverging run (a NaN/Inf in the weights or the loss)
stops with `TrainingDiverged` naming what went non-finite, and never writes a checkpoint or model
of the diverged state; a head learning rate too large for float32 is refused before it corrupts
anything. (The worker turns both into a failed job: test_service_faults.py.)

Divergence is injected, not provoked: a callback writes NaN into a weight after a given step, as
a diverging update would. (Absurd learning rates do not reliably diverge: on some machines the
loss of a 1e30 learning rate peaks near 1e36, finite in float32.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from e2e_stack import MINI

from elmo_core.data import load_dataset
from elmo_core.head import HeadInputError
from elmo_core.training import TrainerCallbacks, TrainingDiverged, parse_config, train
from elmo_core.training.callbacks import Progress
from elmo_core.training.recipe import Recipe


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
            "members": 1,
            "encoder": {"dim": 32},
            "data": {"max_train_points": 256, "max_test_points": 64},
            "schedule": schedule,
        }
    )


class Poison(TrainerCallbacks):
    """After global step `after` (None: the last step of epoch 1) fill the run's tensor `name`
    (`encoder.<parameter>` or `head.<state>`) with NaN."""

    def __init__(self, name: str, after: int | None) -> None:
        self.name, self.after = name, after
        self.recipe: Recipe | None = None
        self.poisoned_at: int | None = None

    def on_progress(self, p: Progress) -> None:
        last_of_first_epoch = p.epoch == 1 and p.step_in_epoch == p.steps_per_epoch
        if self.poisoned_at is None and (
            p.step == self.after or (self.after is None and last_of_first_epoch)
        ):
            assert self.recipe is not None
            part, _, name = self.name.partition(".")
            if part == "encoder":
                tensor = dict(self.recipe.encoder.named_parameters())[name]
            else:
                tensor = self.recipe.head.state_dict()[name]
            with torch.no_grad():
                tensor.fill_(float("nan"))
            self.poisoned_at = p.step


@pytest.mark.parametrize(
    ("log_every", "name", "after", "reason"),
    [
        # The loss is computed every step: the first step after the NaN stops the run.
        (1, "encoder.embedding.weight", 3, "non-finite loss nan"),
        # The loss is never logged after step 0: the end-of-epoch weight check names the weight.
        (
            1000,
            "encoder.embedding.weight",
            3,
            "non-finite values in weight encoder.embedding.weight",
        ),
        # A NaN left in the head by the epoch's last step: the check looks at the head too.
        (1000, "head.weight", None, "non-finite values in weight head.weight"),
    ],
)
def test_divergence_is_reported(mini, tmp_path: Path, log_every, name, after, reason) -> None:
    poison = Poison(name, after)
    recipe = Recipe(_config(log_every), mini, tmp_path, poison)
    poison.recipe = recipe
    recipe.setup(resume=False)
    with pytest.raises(TrainingDiverged) as raised:
        recipe.train()
    err = raised.value
    assert poison.poisoned_at is not None
    # the loss check stops the next step; the weight check runs at the end of epoch 1
    step = poison.poisoned_at if log_every == 1 else recipe.steps_per_epoch
    assert str(err) == f"training diverged: {reason} at epoch 1, step {step}"
    assert (err.epoch, err.step) == (1, step)
    # Nothing of the diverged state is kept: no checkpoint, no model.
    assert not (tmp_path / "checkpoints" / "latest.json").exists()
    assert not (tmp_path / "model").exists()


def test_a_head_learning_rate_that_overflows_float32_is_refused(mini, tmp_path: Path) -> None:
    # the head steps its scaled weights by lr / scale^2: 1e300 does not fit float32 at any scale
    with pytest.raises(HeadInputError, match=r"lr .* is too large: .* overflows float32"):
        train(_config(1, head_lr=1e300), mini, tmp_path)
    assert not (tmp_path / "checkpoints" / "latest.json").exists()
    assert not (tmp_path / "model").exists()


def test_sane_learning_rate_does_not_trip_the_check(mini, tmp_path: Path) -> None:
    config = _config(1)
    config.checkpoint.keep = True
    config.checkpoint.min_interval_s = 0.0  # the last epoch's checkpoint is written
    result = train(config, mini, tmp_path)  # loss checked on every step, weights each epoch
    assert result.metrics is not None and result.metrics["P@1"] > 0
    pointer = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == result.steps
