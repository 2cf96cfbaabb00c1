"""`elmo predict --exclude-label` and the live loss of `elmo train`'s progress display.

A tiny model is trained on a slice of debian-deps-mini with `elmo train` (the loss computed every
4 steps); `elmo predict` then ranks texts about packages that are themselves labels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elmo_core.cli.main import app

MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"
runner = CliRunner()
LABELS = (MINI / "Y.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(model directory, what `elmo train` wrote to stderr)."""
    root = tmp_path_factory.mktemp("predict-cli")
    config = root / "config.json"
    config.write_text(
        json.dumps(
            {
                "data": {"max_train_points": 300},
                "encoder": {"dim": 16, "tfidf": {"max_features": 3000}},
                "batch_size": 50,
                "epochs": 2,
                "log_every": 4,
                "device": "cpu",
            }
        )
    )
    result = runner.invoke(
        app, ["train", "--data", str(MINI), "--config", str(config), "--out", str(root / "run")]
    )
    assert result.exit_code == 0, result.output
    return root / "run" / "model", result.stderr


def predict_json(model: Path, text: str, *args: str) -> list[dict]:
    """`elmo predict --json` of one text: its ranked labels."""
    result = runner.invoke(
        app, ["predict", "--model", str(model), "--text", text, "-k", "5", "--json", *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[0]["labels"]


def test_progress_shows_the_latest_loss_with_its_step(trained: tuple[Path, str]) -> None:
    _, stderr = trained
    # 12 steps; the loss is computed before steps 1, 5 and 9 (every 4): the final bar shows the
    # latest one with its step, not an unlabelled value that looks current.
    shown = re.findall(r"loss (\d+\.\d{3}) @ step (\d+)", stderr)
    assert shown, stderr
    assert shown[-1][1] == "9", shown


def test_exclude_label_by_name_drops_the_text_own_label(trained: tuple[Path, str]) -> None:
    model, _ = trained
    own = next(i for i, t in enumerate(LABELS) if t.startswith("python3-requests:"))
    text = LABELS[own]  # a text that is exactly the label's own: it matches itself best
    plain = predict_json(model, text)
    assert own in [p["label_id"] for p in plain]
    excluded = predict_json(model, text, "--exclude-label", "python3-requests")
    assert own not in [p["label_id"] for p in excluded] and len(excluded) == 5
    assert predict_json(model, text, "--exclude-label", str(own)) == excluded
    assert predict_json(model, text, "--exclude-label", text) == excluded


@pytest.mark.parametrize(
    ("value", "message"),
    [("no-such-package", "no label matches"), ("999999", "no such label id")],
)
def test_exclude_label_that_names_nothing_is_an_error(
    trained: tuple[Path, str], value: str, message: str
) -> None:
    model, _ = trained
    result = runner.invoke(
        app, ["predict", "--model", str(model), "--text", "x", "--exclude-label", value]
    )
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output
