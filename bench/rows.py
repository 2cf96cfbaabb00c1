"""The bench scripts' output: each measurement is one JSON object, printed and, when asked,
appended to a JSON-lines file (`docs/benchmarks.json` gathers the recorded ones); and the rows a
results folder's `rows.py` builds from its files for `docs/benchmarks.json`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def emit(row: dict[str, Any], path: Path | str | None = None) -> None:
    """Print `row` as one JSON line; also append it to `path` when given."""
    line = json.dumps(row)
    print(line, flush=True)
    if path is not None:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


# --- the rows of a results folder (bench/results/*/rows.py) ---------------------------------------

TIME_FORMAT = "/usr/bin/time -f '%e s wall %U user %S sys %M KB'"
"""The `/usr/bin/time` format of the recorded training runs."""


def time_wall(log: Path) -> float:
    """The wall seconds `/usr/bin/time -f TIME_FORMAT` printed on a log's last line."""
    found = re.search(r"([\d.]+) s wall", log.read_text().splitlines()[-1])
    assert found, log
    return float(found.group(1))


def training_row(
    folder: Path,
    name: str,
    *,
    case: str,
    machine: str,
    date: str,
    commit: str,
    dataset: str,
    options: str,
    note: str,
) -> dict[str, Any]:
    """One `elmo train --encoder tfidf` run's row from its `NAME.log`, `NAME-metrics.json` and
    `NAME-telemetry.json` in `folder` (two members; fp32 when `options` say so, else fp8)."""
    metrics = json.loads((folder / f"{name}-metrics.json").read_text())
    telemetry = json.loads((folder / f"{name}-telemetry.json").read_text())
    epochs = [e["seconds"] for e in telemetry["epochs"]]
    selected = metrics["epoch"]
    history = {h["epoch"]: h for h in metrics["history"]}
    test = metrics["metrics"]
    return {
        "case": case,
        "command": f"{TIME_FORMAT} elmo train --data {dataset} --encoder tfidf{options} --out DIR",
        "commit": commit,
        "dataset": dataset,
        "date": date,
        "encoder": "tfidf",
        "epoch_s_range": [round(min(epochs), 2), round(max(epochs), 2)],
        "epochs_run": len(epochs),
        "machine": machine,
        "members": 2,
        "note": note,
        "precision": "fp32" if "fp32" in options else "fp8",
        "raw": f"{folder}/{name}-telemetry.json",
        "test": {k: round(test[k], 2) for k in ("P@1", "P@5", "PSP@5")},
        "validation_P@1": round(history[selected]["P@1"], 2),
        "selected_epoch": selected,
        "fusion": metrics.get("fusion"),
        "wall_s": time_wall(folder / f"{name}.log"),
    }


def h200_tfidf_row(
    folder: Path,
    name: str,
    *,
    case: str,
    machine: str,
    date: str,
    commit: str,
    script: str,
    dataset: str = "debian-deps",
) -> dict[str, Any]:
    """One H200 `tfidf` run's row on `dataset` from `h200/NAME-metrics.json` in `folder` (run by
    `script`; a name ending in `-s1` ran `--seed 1`)."""
    metrics = json.loads((folder / "h200" / f"{name}-metrics.json").read_text())
    test = metrics["metrics"]
    seed = " --seed 1" if name.endswith("-s1") else ""
    return {
        "case": case,
        "command": f"python3 -m elmo_core.cli.main train --data {dataset} --device cuda "
        f"--encoder tfidf{seed} --out DIR ({script})",
        "commit": commit,
        "dataset": dataset,
        "date": date,
        "machine": machine,
        "raw": f"{folder}/h200/{name}-metrics.json",
        "test": {k: round(test[k], 2) for k in ("P@1", "P@5", "PSP@5")},
        "selected_epoch": metrics["epoch"],
        "fusion": metrics.get("fusion"),
    }


def bonsai_row(folder: Path, name: str, *, machine: str, date: str) -> dict[str, Any]:
    """One Omikuji-Bonsai run's row from `NAME.json` (`bench/peers.py --methods bonsai --json`)
    in `folder`; wall = load + featurize + train + predict."""
    run = json.loads((folder / f"{name}.json").read_text())
    features = run["features"]
    return {
        "date": date,
        "machine": machine,
        "case": "peer-bonsai",
        "raw": f"{folder}/{name}.json",
        "dataset": "examples/wordnet-taxonomy",
        "command": "python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "
        f"{name}.json",
        "wall_s": round(
            features["load_s"] + features["featurize_s"] + run["train_s"] + run["predict_s"], 2
        ),
        "featurize_s": round(features["featurize_s"], 2),
        "train_s": round(run["train_s"], 2),
        "predict_s": round(run["predict_s"], 2),
        "test": {k: round(run["metrics"][k], 2) for k in ("P@1", "P@5", "PSP@5")},
    }


def replace_folder_rows(
    folder: Path, rows: list[dict[str, Any]], path: Path = Path("docs/benchmarks.json")
) -> None:
    """Replace the rows of `path` whose `raw` names `folder` by `rows` (appended at the end), so
    a folder's script can run again."""
    kept = [row for row in json.loads(path.read_text()) if str(folder) not in row.get("raw", "")]
    path.write_text(json.dumps(kept + rows, indent=1) + "\n")
