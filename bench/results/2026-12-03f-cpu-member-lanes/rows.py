"""Append this pass's rows to docs/benchmarks.json from the files of this folder (run once, from
the repository root: `python bench/results/2026-12-03f-cpu-member-lanes/rows.py`)."""

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
ROWS = Path("docs/benchmarks.json")
MACHINE = "2-core AMD EPYC VM with AVX-512 (avx512_bf16, no AMX), torch 2.13.0+cpu (session 32)"
H200_CPU = "the H200 host's 16 CPU cores (torch 2.13 on the device machine), --device cpu"
TIME = "/usr/bin/time -f '%e s wall %U user %S sys %M KB'"
OLD = "(cd /tmp/exp, a worktree at 317b723) PYTHONPATH=/tmp/exp " + TIME
OLD += " python -m elmo_core.cli.main train"
RUNS = {
    # name: (commit, dataset, command's options, note)
    "base-1": ("317b723", "examples/wordnet-taxonomy", "", "first run here (cold numba cache)"),
    "old-1": ("317b723", "examples/wordnet-taxonomy", "", "interleaved A/B, old"),
    "old-2": ("317b723", "examples/wordnet-taxonomy", "", "interleaved A/B, old"),
    "new-1": ("04570e8", "examples/wordnet-taxonomy", "", "interleaved A/B, members on lanes"),
    "new-2": ("04570e8", "examples/wordnet-taxonomy", "", "interleaved A/B, members on lanes"),
    "wn-seed1": ("04570e8", "examples/wordnet-taxonomy", " --seed 1", "members on lanes"),
    "wn-seed2": ("04570e8", "examples/wordnet-taxonomy", " --seed 2", "members on lanes"),
    "wn-seed3": ("4466816", "examples/wordnet-taxonomy", " --seed 3", "members on lanes"),
    "wn-seed4": ("4466816", "examples/wordnet-taxonomy", " --seed 4", "members on lanes"),
    "deb-new": ("04570e8", "../shared/datasets/debian-deps", "", "members on lanes"),
    "deb-fp32": ("04570e8", "../shared/datasets/debian-deps", " --precision fp32", "fp32 head"),
    "mini-new": ("04570e8", "examples/debian-deps-mini", "", "members on lanes"),
    "wn-m1": ("04570e8", "examples/wordnet-taxonomy", " --members 1", "one member"),
    "ep12-seed0": ("c2f640a", "examples/wordnet-taxonomy", " --epochs 12 --seed 0", "12 epochs"),
    "ep12-seed1": ("c2f640a", "examples/wordnet-taxonomy", " --epochs 12 --seed 1", "12 epochs"),
}
for mode, lanes in (("auto", "null"), ("serial", "1")):
    RUNS[f"s100k-{mode}"] = (
        "4466816",
        "/tmp/s100k",
        f" --config cfg-s100k-{mode}.json",
        f"2 epochs, member_lanes {lanes}; synthetic (elmo data synth /tmp/s100k --shape "
        "amazon-670k --scale 0.2 --seed 0): time only",
    )
for i in (1, 2, 3):
    for mode, lanes in (("serial", "1"), ("auto", "null")):
        RUNS[f"ep3-{mode}-{i}"] = (
            "04570e8",
            "examples/wordnet-taxonomy",
            f" --config cfg-{mode}.json",
            f"3 epochs, member_lanes {lanes}",
        )


def wall(log: Path) -> float:
    """The `/usr/bin/time` wall seconds at the end of a log."""
    found = re.search(r"([\d.]+) s wall", log.read_text().splitlines()[-1])
    assert found, log
    return float(found.group(1))


def run_row(name: str, commit: str, dataset: str, options: str, note: str, machine: str) -> dict:
    """One training run's row from its log, metrics and telemetry."""
    metrics = json.loads((HERE / f"{name}-metrics.json").read_text())
    telemetry = json.loads((HERE / f"{name}-telemetry.json").read_text())
    epochs = [e["seconds"] for e in telemetry["epochs"]]
    selected = metrics["epoch"]
    history = {h["epoch"]: h for h in metrics["history"]}
    prefix = OLD if commit == "317b723" else TIME + " elmo train"
    command = f"{prefix} --data {dataset} --encoder tfidf{options} --out DIR"
    test = metrics["metrics"]
    return {
        "case": "cpu-recipe-thirteenth-pass",
        "command": command,
        "commit": commit,
        "dataset": dataset,
        "date": "2026-12-03",
        "encoder": "tfidf",
        "epoch_s_range": [min(epochs), max(epochs)],
        "epochs_run": len(epochs),
        "machine": machine,
        "members": 1 if "--members 1" in options else 2,
        "note": note,
        "precision": "fp32" if "fp32" in options else "fp8",
        "raw": f"{HERE}/{name}-telemetry.json",
        "test": {k: round(test[k], 2) for k in ("P@1", "P@5", "PSP@5")},
        "validation_P@1": round(history[selected]["P@1"], 2),
        "selected_epoch": selected,
        "wall_s": wall(HERE / f"{name}.log"),
    }


def bonsai_row(name: str) -> dict:
    """One Omikuji-Bonsai run's row."""
    run = json.loads((HERE / f"{name}.json").read_text())
    features = run["features"]
    return {
        "date": "2026-12-03",
        "machine": MACHINE,
        "case": "peer-bonsai",
        "raw": f"{HERE}/{name}.json",
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


def main() -> None:
    """Append the rows."""
    rows = [row for row in json.loads(ROWS.read_text()) if row.get("raw", "").find(str(HERE)) < 0]
    for name, spec in RUNS.items():
        rows.append(run_row(name, *spec, machine=MACHINE))
    for i in (1, 2):
        for mode in ("serial", "auto"):
            folder = HERE / "h200-16core-cpu"
            name = f"ep3-{mode}-{i}"
            telemetry = json.loads((folder / f"{name}-telemetry.json").read_text())
            log = (folder / f"{name}.log").read_text()
            found = re.search(r"test P@1 ([\d.]+)", log)
            assert found
            rows.append(
                {
                    "case": "cpu-recipe-thirteenth-pass",
                    "command": f"{TIME} python3 -m elmo_core.cli.main train --data "
                    f"examples/wordnet-taxonomy --encoder tfidf --device cpu --config {mode}.json "
                    "--out DIR",
                    "commit": "04570e8",
                    "dataset": "examples/wordnet-taxonomy",
                    "date": "2026-12-03",
                    "machine": H200_CPU,
                    "note": f"3 epochs, member_lanes {'1' if mode == 'serial' else 'null'}",
                    "epoch_s": [e["seconds"] for e in telemetry["epochs"]],
                    "test": {"P@1": float(found.group(1))},
                    "wall_s": wall(folder / f"{name}.log"),
                    "raw": f"{folder}/{name}-telemetry.json",
                }
            )
    for i in range(1, 8):
        rows.append(bonsai_row(f"bonsai-{i}"))
    ROWS.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
