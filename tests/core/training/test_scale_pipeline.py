"""A generated dataset of the amazon-3m shape (many labels per point) through the whole pipeline
on the CPU: synth -> load -> setup phases (featurizing, priors on forked workers) -> an epoch ->
the saved model evaluated on test, with the phase records a job shows."""

from __future__ import annotations

import json
from pathlib import Path

from elmo_core.data import load_dataset
from elmo_core.data.synth import resolve_shape, synthesize
from elmo_core.inference import Predictor
from elmo_core.training import TrainerCallbacks, parse_config, train


class Recorder(TrainerCallbacks):
    def __init__(self) -> None:
        self.phases: list[str] = []
        self.records: list[dict] = []
        self.logs: list[str] = []

    def on_phase(self, phase: str) -> None:
        self.phases.append(phase)

    def on_telemetry(self, record: dict) -> None:
        self.records.append(record)

    def on_log(self, message: str) -> None:
        self.logs.append(message)


def test_a_generated_amazon_3m_shape_trains_end_to_end(tmp_path: Path) -> None:
    shape = resolve_shape("amazon-3m", 0.002)
    synthesize(tmp_path / "data", shape, seed=3, workers=2)
    dataset = load_dataset(tmp_path / "data")
    assert dataset.num_labels == shape.labels and dataset.test is not None
    config = parse_config(
        {
            "device": "cpu",
            "epochs": 1,
            "batch_size": 64,
            "encoder": {"dim": 32},
            "fusion": {"neighbours": 10, "candidates": 20},
        }
    )
    rec = Recorder()
    result = train(config, dataset, tmp_path / "run", rec)
    assert rec.phases[:4] == ["loading", "featurizing", "priors", "training"]
    phases = {r["phase"]: r for r in rec.records if r["kind"] == "phase"}
    assert {"featurizing", "priors", "evaluating validation", "evaluating test"} <= set(phases)
    assert all(r["host_rss"] > 0 and r["seconds"] >= 0 for r in phases.values())
    assert phases["evaluating test"]["points"] == dataset.test.num_points
    assert any(line.startswith("neighbour prior:") and "CPU" in line for line in rec.logs)
    assert result.metrics is not None and 0.0 <= result.metrics["P@1"] <= 100.0
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["metrics"] == result.metrics and summary["split"] == "test"
    predictor = Predictor.load(result.model_dir)
    first = predictor.predict([dataset.test.texts[0]], k=5)[0]
    assert len(first) == 5
