"""The text priors fitted beside the first epoch (`fusion.fit_beside_training`): the same model
as fitting them first, their log lines relayed, failures named, nothing left running."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from elmo_core.parallel import can_fork
from elmo_core.training import TrainerCallbacks, TrainingCancelled, train
from elmo_core.training.background_priors import (
    NICENESS,
    PriorsBesideTraining,
    PriorsFitError,
)

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


class Lines(TrainerCallbacks):
    """Keeps the log lines and the phases, in order; stops after `stop_after` steps if set."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.lines: list[str] = []
        self.phases: list[str] = []
        self.stop_after = stop_after
        self.steps = 0

    def on_log(self, message: str) -> None:
        self.lines.append(message)

    def on_phase(self, phase: str) -> None:
        self.phases.append(phase)

    def should_stop(self) -> bool:
        self.steps += 1
        return self.stop_after is not None and self.steps >= self.stop_after


def _config(small_config, beside: bool):
    """Fitted weights and a chosen vote power on a 72-point validation slice."""
    return small_config(
        data={"validation_fraction": 0.3},
        fusion={"fit_min_points": 50, "fit_beside_training": beside},
    )


def test_priors_fitted_beside_the_first_epoch_give_the_same_model(
    mini_dataset, tmp_path, small_config
):
    first = train(_config(small_config, False), mini_dataset, tmp_path / "first")
    log = Lines()
    beside = train(_config(small_config, True), mini_dataset, tmp_path / "beside", log)
    assert beside.metrics == first.metrics and beside.history == first.history
    assert beside.fusion == first.fusion and beside.fusion["vote_power"] is not None
    for name in ("fusion.json", "model.safetensors"):
        if name.endswith(".json"):
            same = json.loads((first.model_dir / name).read_text()) == json.loads(
                (beside.model_dir / name).read_text()
            )
        else:
            a, b = load_file(str(first.model_dir / name)), load_file(str(beside.model_dir / name))
            same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert same, name
    assert log.phases[:3] == ["loading", "featurizing", "training"]
    assert log.phases[3] == "priors"  # read back before the first evaluation
    assert "the text priors are fitted beside the first epoch" in log.lines
    assert any(line.startswith("fusion: label-text weight") for line in log.lines)  # the child's
    assert any(line.startswith("priors fitted beside the first epoch in ") for line in log.lines)
    assert not (tmp_path / "beside" / "priors").exists()
    assert not multiprocessing.active_children()


def test_a_run_cancelled_while_the_priors_fit_leaves_nothing_running(
    mini_dataset, tmp_path, small_config
):
    with pytest.raises(TrainingCancelled):
        train(_config(small_config, True), mini_dataset, tmp_path, Lines(stop_after=2))
    assert not multiprocessing.active_children()
    assert not (tmp_path / "priors").exists()


def test_a_resumed_run_fits_its_priors_beside_again_and_ends_the_same(
    mini_dataset, tmp_path, small_config
):
    config = _config(small_config, True)
    full = train(config, mini_dataset, tmp_path / "full")
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path / "cut", Lines(stop_after=12))  # in epoch 2
    resumed = train(config, mini_dataset, tmp_path / "cut", resume=True)
    assert resumed.metrics == full.metrics and resumed.history == full.history
    assert resumed.fusion == full.fusion


def _fit_then_fail(log):
    log("starting")
    raise ValueError("no label texts here")


def _fit_then_die(log):
    os.kill(os.getpid(), signal.SIGKILL)


def _fit_slowly(log):
    time.sleep(120)


def test_a_failing_fit_names_its_error_and_relays_its_lines(tmp_path):
    priors = PriorsBesideTraining(tmp_path / "priors", None)
    priors.start(_fit_then_fail)
    lines: list[str] = []
    with pytest.raises(PriorsFitError, match="ValueError: no label texts here"):
        priors.result(lines.append)
    assert lines == ["starting"]
    assert not (tmp_path / "priors").exists()


def _fit_reporting_priority(log):
    log(f"nice {os.nice(0)}")


def test_the_fit_runs_at_a_lower_priority_than_the_trainer(tmp_path):
    priors = PriorsBesideTraining(tmp_path / "priors", None)
    priors.start(_fit_reporting_priority)
    lines: list[str] = []
    assert priors.result(lines.append) is None  # the fit returned no priors
    assert lines[0] == f"nice {min(19, os.nice(0) + NICENESS)}"  # the parent's stays


def test_a_killed_fit_says_it_was_killed(tmp_path):
    priors = PriorsBesideTraining(tmp_path / "priors", None)
    priors.start(_fit_then_die)
    with pytest.raises(PriorsFitError, match="killed by signal 9"):
        priors.result(lambda line: None)


def test_cancel_stops_the_fit(tmp_path):
    priors = PriorsBesideTraining(tmp_path / "priors", None)
    priors.start(_fit_slowly)
    assert multiprocessing.active_children()
    priors.cancel()
    assert not multiprocessing.active_children()
    assert not (tmp_path / "priors").exists()
