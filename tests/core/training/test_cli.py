"""`elmo train / eval / predict` end to end on a slice of debian-deps-mini, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elmo_core.cli.main import app

MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"
runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "config.json"
    config.write_text(
        json.dumps(
            {
                "data": {"max_train_points": 150},
                "encoder": {"dim": 16, "tfidf": {"max_features": 3000}},
                "batch_size": 50,
                "device": "cpu",
            }
        )
    )
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(MINI),
            "--config",
            str(config),
            "--epochs",
            "2",
            "--precision",
            "bf16",
            "--out",
            str(root / "run"),
        ],
    )
    assert result.exit_code == 0, result.output
    (root / "run" / "cli-output.txt").write_text(result.stdout)
    (root / "run" / "cli-all-output.txt").write_text(result.output)
    return root / "run"


def test_the_per_epoch_lines_name_their_split(run_dir):
    printed = (run_dir / "cli-all-output.txt").read_text()
    assert "epoch 1, validation: P@1" in printed and "epoch 2, validation: P@1" in printed


def test_train_writes_the_model_and_applies_overrides(run_dir):
    meta = json.loads((run_dir / "model" / "config.json").read_text())
    assert meta["head"]["precision"] == "bf16"
    assert meta["train_config"]["epochs"] == 2
    assert meta["train_config"]["data"]["max_train_points"] == 150


def test_eval_json_prints_the_metrics(run_dir):
    result = runner.invoke(
        app, ["eval", "--model", str(run_dir / "model"), "--data", str(MINI), "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"P@1", "P@5", "nDCG@3", "PSP@5", "R@5"}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary == json.loads((run_dir / "model" / "metrics.json").read_text())
    assert summary["split"] == "test" and summary["selected_on"] == "validation"
    assert metrics == pytest.approx(summary["metrics"], abs=1e-9)  # the saved model, exactly
    last_line = (run_dir / "cli-output.txt").read_text().strip().splitlines()[-1]
    shown = ", ".join(f"{k} {summary['metrics'][k]:.2f}" for k in ("P@1", "P@5", "PSP@5"))
    assert last_line.endswith(f"(epoch {summary['epoch']}, test {shown})")


def test_predict_json(run_dir):
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(run_dir / "model"),
            "--text",
            "python3 library",
            "-k",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload[0]["text"] == "python3 library" and len(payload[0]["labels"]) == 3
    assert {"label_id", "label", "score"} == set(payload[0]["labels"][0])


def test_print_config_is_a_loadable_skeleton(tmp_path):
    result = runner.invoke(app, ["train", "--print-config", "--encoder", "minilm"])
    assert result.exit_code == 0, result.output
    raw = json.loads(result.stdout)
    assert raw["encoder"]["name"] == "minilm"
    path = tmp_path / "c.json"
    path.write_text(result.stdout)
    again = runner.invoke(app, ["train", "--print-config", "--config", str(path)])
    assert json.loads(again.stdout) == raw
    members = runner.invoke(app, ["train", "--print-config", "--members", "2"])
    assert json.loads(members.stdout)["members"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "/no/such/dir", "--out", "X"], "not found"),
        (["train", "--data", str(MINI), "--out", "X", "--precision", "fp4"], "precision"),
        (["train", "--print-config", "--encoder", "minilm", "--members", "2"], "members 2"),
        (["train", "--data", str(MINI)], "--out is required"),
        (["train", "--data", str(MINI), "--out", "/no/run", "--resume"], "no run to resume"),
        (["eval", "--model", "/no/model", "--data", str(MINI)], "not a model directory"),
        (["predict", "--model", "/no/model", "--text", "x"], "not a model directory"),
    ],
)
def test_bad_inputs_exit_non_zero_without_traceback(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
