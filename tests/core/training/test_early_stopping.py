"""Early stopping on the validation slice (`eval.patience`): where it stops, that a resumed run
stops at the same epoch, that the test split never stops a run, and the config's checks."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_resume import StopAfter

from elmo_core.config import DEFAULT_PATIENCE, parse_config
from elmo_core.errors import ConfigError
from elmo_core.training import TrainerCallbacks, TrainingCancelled, train
from elmo_core.training.recipe import Recipe

STEPS_PER_EPOCH = 8  # the small config: 228 train points (12 held out), batches of 32


class Lines(TrainerCallbacks):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture()
def scripted_metric(monkeypatch):
    """Make epoch e's select metric (P@1) `values[e - 1]`; training and every other metric stay
    real, so the weights of a stopped run can be compared too."""

    def install(values: list[float]) -> None:
        real = Recipe.evaluate

        def evaluate(self):
            metrics, weights = real(self)
            return {**metrics, "P@1": values[self.run.epoch]}, weights

        monkeypatch.setattr(Recipe, "evaluate", evaluate)

    return install


def test_stops_once_the_metric_has_not_reached_the_best_for_patience_epochs(
    mini_dataset, tmp_path, small_config, scripted_metric
):
    # epoch 3 ties epoch 2 (selected, as a tie is), then 2 epochs below it: stop after 5
    scripted_metric([10.0, 20.0, 20.0, 15.0, 19.0, 30.0])
    log = Lines()
    result = train(small_config(epochs=6, eval={"patience": 2}), mini_dataset, tmp_path, log)
    assert result.stopped_early == {"epoch": 5, "best_epoch": 3, "patience": 2}
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5]
    assert result.epoch == 3 and result.steps == 5 * STEPS_PER_EPOCH
    assert result.validation_metrics["P@1"] == 20.0
    expected = (
        "early stop after epoch 5: P@1 on validation has not improved since epoch 3 (patience 2)"
    )
    assert expected in log.lines
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["stopped_early"] == {"epoch": 5, "best_epoch": 3, "patience": 2}
    assert summary["epoch"] == 3 and summary["metrics"] is not None  # test split reported


def test_no_stop_without_patience_or_at_the_last_epoch(
    mini_dataset, tmp_path, small_config, scripted_metric
):
    scripted_metric([30.0, 20.0, 10.0, 5.0])
    off = train(small_config(epochs=4, eval={"patience": None}), mini_dataset, tmp_path / "a")
    assert off.stopped_early is None and len(off.history) == 4 and off.epoch == 1
    zero = train(small_config(epochs=4, eval={"patience": 0}), mini_dataset, tmp_path / "b")
    assert zero.stopped_early is None and len(zero.history) == 4
    # patience 3 would be reached after epoch 4, which is the last one anyway: not an early stop
    last = train(small_config(epochs=4, eval={"patience": 3}), mini_dataset, tmp_path / "c")
    assert last.stopped_early is None and last.steps == 4 * STEPS_PER_EPOCH
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["stopped_early"] is None


def test_the_test_split_never_stops_a_run(mini_dataset, tmp_path, small_config, scripted_metric):
    scripted_metric([30.0, 20.0, 10.0, 5.0])
    log = Lines()
    config = small_config(epochs=4, eval={"split": "test", "patience": 1})
    result = train(config, mini_dataset, tmp_path, log)
    assert result.stopped_early is None and len(result.history) == 4 and result.epoch == 4
    assert any("no early stopping" in line for line in log.lines)


def _same_run(a, b) -> None:
    assert a.history == b.history and a.steps == b.steps and a.epoch == b.epoch
    assert a.stopped_early == b.stopped_early and a.metrics == b.metrics
    wa = load_file(str(a.model_dir / "model.safetensors"))
    wb = load_file(str(b.model_dir / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_resumed_run_stops_at_the_same_epoch(
    mini_dataset, tmp_path, small_config, scripted_metric, monkeypatch
):
    scripted_metric([10.0, 20.0, 15.0, 14.0, 30.0])
    config = small_config(epochs=5, eval={"patience": 2})
    full = train(config, mini_dataset, tmp_path / "full")
    assert full.stopped_early == {"epoch": 4, "best_epoch": 2, "patience": 2}
    # killed in epoch 3, before the stop
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path / "cut", StopAfter(2 * STEPS_PER_EPOCH + 3))
    _same_run(train(config, mini_dataset, tmp_path / "cut", resume=True), full)

    # killed after the stopping epoch's checkpoint, before the run finished
    class Crash(RuntimeError):
        pass

    def crash(self):
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(Recipe, "_finish", crash)
        with pytest.raises(Crash):
            train(config, mini_dataset, tmp_path / "late")
    state = json.loads(
        next((tmp_path / "late" / "checkpoints").glob("step-*/state.json")).read_text()
    )
    assert state["epoch"] == 4 and state["stopped_early"] == full.stopped_early
    log = Lines()
    resumed = train(config, mini_dataset, tmp_path / "late", log, resume=True)
    _same_run(resumed, full)
    assert not any(line.startswith("early stop") for line in log.lines)  # nothing retrained


def test_a_checkpoint_from_before_early_stopping_resumes(mini_dataset, tmp_path, small_config):
    config = small_config(epochs=2)
    full = train(config, mini_dataset, tmp_path / "full")
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path / "old", StopAfter(STEPS_PER_EPOCH + 2))
    folder = tmp_path / "old" / "checkpoints" / f"step-{STEPS_PER_EPOCH + 2:08d}"
    state = json.loads((folder / "state.json").read_text())
    del state["stopped_early"], state["config"]["eval"]["patience"]
    for key in ("fit_weights", "weight_grid"):
        del state["config"]["fusion"][key]
    (folder / "state.json").write_text(json.dumps(state))
    _same_run(train(config, mini_dataset, tmp_path / "old", resume=True), full)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"eval": {"patience": -1}}, "eval.patience"),
        ({"eval": {"patience": "3"}}, "eval.patience"),
        ({"eval": {"patience": 1.5}}, "eval.patience"),
        ({"eval": {"patience": 10**6}}, "eval.patience"),
    ],
)
def test_bad_patience_is_refused(raw, where):
    with pytest.raises(ConfigError, match=where):
        parse_config(raw)


def test_patience_default_and_off():
    assert parse_config({}).eval.patience == DEFAULT_PATIENCE == 3
    assert parse_config({"eval": {"patience": None}}).eval.patience is None
    assert parse_config({"eval": {"patience": 0}}).eval.patience == 0
