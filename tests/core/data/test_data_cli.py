"""`elmo data inspect`: JSON and table output, and clean failures on bad datasets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from data_helpers import EXAMPLE_MINI, FIXTURES, MakeDataset
from typer.testing import CliRunner

from elmo_core.cli.main import app

runner = CliRunner()


def test_inspect_json_reports_the_mini_dataset() -> None:
    result = runner.invoke(app, ["data", "inspect", str(EXAMPLE_MINI), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["train"]["points"], stats["test"]["points"], stats["num_labels"]) == (
        3000,
        750,
        8779,
    )
    assert stats["format"] == "lf-raw" and stats["name"] == "debian-deps-mini"


def test_inspect_table_shows_the_numbers() -> None:
    result = runner.invoke(app, ["data", "inspect", str(EXAMPLE_MINI)])
    assert result.exit_code == 0, result.output
    assert "3,000" in result.stdout and "8,779" in result.stdout and "29.04" in result.stdout


def test_inspect_prints_empty_rows_warning_on_stderr() -> None:
    result = runner.invoke(app, ["data", "inspect", str(FIXTURES / "bow-tiny"), "--json"])
    assert result.exit_code == 0
    assert "warning: points with no labels kept: 1 in" in result.stderr
    assert json.loads(result.stdout)["train"]["points_without_labels"] == 1


def test_inspect_drop_option() -> None:
    args = ["data", "inspect", str(FIXTURES / "bow-tiny"), "--json", "--empty-rows", "drop"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["train"]["points"] == 3


def test_inspect_bad_dataset_exits_1_with_file_line_reason(make_dataset: MakeDataset) -> None:
    root = make_dataset("lf-tiny", {"tst_X_Y.txt": "2 5\n4:1\n0:1 0:1\n"})
    command = "from elmo_core.cli.main import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", command, "data", "inspect", str(root)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 1
    assert done.stderr == f"error: {root / 'tst_X_Y.txt'}:3: duplicate label id 0\n"
    assert done.stdout == ""


def test_inspect_error_option_fails_on_empty_rows() -> None:
    args = ["data", "inspect", str(FIXTURES / "jsonl-tiny"), "--empty-rows", "error"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"{FIXTURES / 'jsonl-tiny' / 'test.jsonl'}:2: point has no labels" in result.stderr
