"""The recipe end to end on a slice of debian-deps-mini: callbacks, artifacts, telemetry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elmo_core.data.splits import select_splits
from elmo_core.metrics import evaluate
from elmo_core.training import PHASES, TrainerCallbacks, train
from elmo_core.training.batches import batch_pairs, epoch_order


class Recorder(TrainerCallbacks):
    def __init__(self) -> None:
        self.phases, self.progress, self.metrics, self.telemetry, self.logs = [], [], [], [], []

    def on_phase(self, phase):
        self.phases.append(phase)

    def on_progress(self, p):
        self.progress.append(p)

    def on_metrics(self, epoch, metrics):
        self.metrics.append((epoch, metrics))

    def on_telemetry(self, record):
        self.telemetry.append(record)

    def on_log(self, message):
        self.logs.append(message)


def test_fp8_run_reports_and_writes_everything(mini_dataset, tmp_path, small_config):
    rec = Recorder()
    result = train(small_config(), mini_dataset, tmp_path, rec)
    assert set(rec.phases) <= set(PHASES) and rec.phases[0] == "loading"
    assert "head gradient floor 0.01 (cpu default)" in rec.logs
    assert "members 2 (cpu default)" in rec.logs
    assert [p.step for p in rec.progress] == list(range(1, 17))
    assert rec.progress[-1].total_steps == 16 and rec.progress[-1].eta_s == 0
    losses = [p.loss for p in rec.progress if p.loss is not None]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert [e for e, _ in rec.metrics] == [1, 2]
    names = {f"{m}@{k}" for m in ("P", "nDCG", "PSP", "R") for k in (1, 3, 5)}
    assert set(rec.metrics[0][1]) == names | {f"head {name}" for name in names}
    kinds = [r["kind"] for r in rec.telemetry if r["kind"] != "phase"]
    assert kinds == ["static", "epoch", "epoch"]
    phases = [r for r in rec.telemetry if r["kind"] == "phase"]
    names = [r["phase"] for r in phases]
    assert names[:2] == ["featurizing", "priors"] and names[-1] == "evaluating test"
    assert names.count("evaluating validation") == 2 and "saving model" in names
    assert all(r["seconds"] >= 0 and r["host_rss"] > 0 for r in phases)
    assert phases[-1]["points"] == select_splits(small_config(), mini_dataset).test.num_points
    static = next(r for r in rec.telemetry if r["kind"] == "static")
    assert static["head_weights"] >= mini_dataset.num_labels * 32
    assert static["optimizer_states"] > 0 and static["encoder"] > 0
    epoch = next(r for r in rec.telemetry if r["kind"] == "epoch")
    assert epoch["cpu_peak_rss"] > 0 and epoch["host_rss"] > 0
    assert set(epoch["phases"]) == {
        "encoder_forward",
        "head_step",
        "encoder_backward",
        "optimizer_step",
    }
    # steps' phases are timed every TIMED_EVERY (50) steps whatever log_every (4 here): step 0
    epochs = [r for r in rec.telemetry if r["kind"] == "epoch"]
    assert [e["phases"]["head_step"]["timed_steps"] for e in epochs] == [1, 0]
    assert sum(p.loss is not None for p in rec.progress) == 4  # steps 0, 4, 8, 12
    telemetry = json.loads((tmp_path / "telemetry.json").read_text())
    assert len(telemetry["epochs"]) == 2 and telemetry["static"]["kind"] == "static"
    assert [r["phase"] for r in telemetry["phases"]] == names
    for name in ("config.json", "model.safetensors", "label_texts.json", "tfidf.json"):
        assert (result.model_dir / name).exists()
    metrics = json.loads((result.model_dir / "metrics.json").read_text())
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epoch"] == result.epoch and metrics["split"] == "test"
    assert metrics["metrics"] == result.metrics and set(result.metrics) == set(rec.metrics[0][1])
    assert [h["split"] for h in metrics["history"]] == ["validation", "validation"]
    best = max(m["P@1"] for _, m in rec.metrics)
    assert result.validation_metrics["P@1"] == best
    assert result.epoch == max(e for e, m in rec.metrics if m["P@1"] == best)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["model"]  # one copy


def _popularity_baseline(config, dataset):
    """Metrics of ranking every test point's labels by their train frequency."""
    splits = select_splits(config, dataset)
    counts = np.bincount(splits.train.labels.indices, minlength=dataset.num_labels)
    popular = np.tile(np.argsort(-counts, kind="stable")[:10], (splits.test.num_points, 1))
    return evaluate(popular, splits.test.labels, filter_pairs=splits.test.filter_pairs)


def test_learns_better_than_the_most_frequent_labels(mini_dataset, tmp_path, small_config):
    config = small_config(
        epochs=5,
        data={"max_train_points": 1000, "max_test_points": 200},
        encoder={"dim": 64},
        batch_size=50,
    )
    result = train(config, mini_dataset, tmp_path)
    baseline = _popularity_baseline(config, mini_dataset)
    assert result.metrics["P@1"] > baseline["P@1"] + 5.0
    assert result.metrics["P@5"] > baseline["P@5"] + 1.0


def test_epoch_order_and_batch_pairs(mini_dataset):
    a = epoch_order(3, 1, 100)
    assert sorted(a.tolist()) == list(range(100))
    assert np.array_equal(a, epoch_order(3, 1, 100))
    assert not np.array_equal(a, epoch_order(3, 2, 100))
    rows = np.array([5, 2])
    r, c = batch_pairs(mini_dataset.train.labels, rows)
    for batch_row, point in enumerate(rows):
        expected = mini_dataset.train.labels[point].indices
        assert sorted(c[r == batch_row].tolist()) == sorted(expected.tolist())


def test_validation_split_is_carved_from_train(mini_dataset, small_config):
    config = small_config(data={"max_train_points": 200, "validation_fraction": 0.25})
    splits = select_splits(config, mini_dataset)
    train_split, validation = splits.train, splits.validation
    assert train_split.num_points == 150 and validation.num_points == 50
    assert validation.texts[0] == mini_dataset.train.texts[150]
    pairs = mini_dataset.train.filter_pairs
    inside = pairs[(pairs[:, 0] >= 150) & (pairs[:, 0] < 200)]
    assert len(validation.filter_pairs) == len(inside)
    assert np.array_equal(validation.filter_pairs[:, 0] + 150, inside[:, 0])


def test_validation_slice_is_capped_and_optional(mini_dataset, small_config):
    capped = small_config(data={"max_train_points": 200, "max_validation_points": 7})
    assert select_splits(capped, mini_dataset).validation.num_points == 7
    off = small_config(data={"validation_fraction": 0.0})
    assert select_splits(off, mini_dataset).validation is None


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_other_precisions_train(mini_dataset, tmp_path, precision, small_config):
    """bf16 and fp32 heads learn: test P@1 well above ranking labels by their frequency."""
    config = small_config(
        precision=precision,
        epochs=3,
        data={"max_train_points": 1000, "max_test_points": 200},
        encoder={"dim": 64},
        batch_size=50,
    )
    result = train(config, mini_dataset, tmp_path)
    assert result.metrics["P@1"] > _popularity_baseline(config, mini_dataset)["P@1"] + 5.0
    saved = json.loads((result.model_dir / "config.json").read_text())
    assert saved["head"]["precision"] == precision


def test_features_encoder_trains_on_a_bow_dataset(tmp_path, small_config):
    from elmo_core.data import load_dataset

    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "bow-tiny"
    dataset = load_dataset(fixture, empty_rows="keep")
    config = small_config(
        encoder={"name": "features", "dim": 8},
        batch_size=2,
        members=1,
        data={"max_train_points": None, "max_test_points": None},
    )
    result = train(config, dataset, tmp_path)
    meta = json.loads((result.model_dir / "config.json").read_text())
    assert meta["encoder"] == {"kind": "sparse", "num_features": 6, "dim": 8, "bias_columns": 1}
    assert result.steps == 2 * 2
    assert set(result.metrics) >= {"P@1", "PSP@1"}
