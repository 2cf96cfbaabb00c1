"""Append this check's rows to docs/benchmarks.json from the files of this folder (run once, from
the repository root: `python bench/results/2026-12-03h-cpu-avx512-check/rows.py`; it replaces the
rows it wrote before)."""

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
ROWS = Path("docs/benchmarks.json")
MACHINE = "2-core AMD EPYC VM with AVX-512 (avx512_bf16, no AMX), torch 2.13.0+cpu (session 34)"
H200 = "one NVIDIA H200 (device machine), torch on the device, --device cuda"
TIME = "/usr/bin/time -f '%e s wall %U user %S sys %M KB'"
COMMIT = "eb282fc"
RUNS = {
    # name: (commit, dataset, command's options, note)
    "mini-warm": (COMMIT, "examples/debian-deps-mini", "", "first run after the venv (numba cold)"),
    "mini": (COMMIT, "examples/debian-deps-mini", "", "defaults"),
    "wn-s0": (COMMIT, "examples/wordnet-taxonomy", "", "defaults"),
    "deb": (COMMIT, "../shared/datasets/debian-deps", "", "defaults"),
    "deb-fp32": (COMMIT, "../shared/datasets/debian-deps", " --precision fp32", "fp32 head"),
}
for i in (1, 2, 3, 4):
    RUNS[f"wn-s{i}"] = (COMMIT, "examples/wordnet-taxonomy", f" --seed {i}", "defaults")


def wall(log: Path) -> float:
    """The `/usr/bin/time` wall seconds at the end of a log."""
    found = re.search(r"([\d.]+) s wall", log.read_text().splitlines()[-1])
    assert found, log
    return float(found.group(1))


def run_row(name: str, commit: str, dataset: str, options: str, note: str) -> dict:
    """One training run's row from its log, metrics and telemetry."""
    metrics = json.loads((HERE / f"{name}-metrics.json").read_text())
    telemetry = json.loads((HERE / f"{name}-telemetry.json").read_text())
    epochs = [e["seconds"] for e in telemetry["epochs"]]
    selected = metrics["epoch"]
    history = {h["epoch"]: h for h in metrics["history"]}
    test = metrics["metrics"]
    return {
        "case": "cpu-recipe-closing-check",
        "command": f"{TIME} elmo train --data {dataset} --encoder tfidf{options} --out DIR",
        "commit": commit,
        "dataset": dataset,
        "date": "2026-12-03",
        "encoder": "tfidf",
        "epoch_s_range": [round(min(epochs), 2), round(max(epochs), 2)],
        "epochs_run": len(epochs),
        "machine": MACHINE,
        "members": 2,
        "note": note,
        "precision": "fp32" if "fp32" in options else "fp8",
        "raw": f"{HERE}/{name}-telemetry.json",
        "test": {k: round(test[k], 2) for k in ("P@1", "P@5", "PSP@5")},
        "validation_P@1": round(history[selected]["P@1"], 2),
        "selected_epoch": selected,
        "fusion": metrics.get("fusion"),
        "wall_s": wall(HERE / f"{name}.log"),
    }


def h200_row(name: str) -> dict:
    """One H200 run's row (debian-deps, tfidf, one member on the GPU)."""
    metrics = json.loads((HERE / "h200" / f"{name}-metrics.json").read_text())
    test = metrics["metrics"]
    seed = " --seed 1" if name.endswith("-s1") else ""
    return {
        "case": "gpu-recipe-closing-check",
        "command": "python3 -m elmo_core.cli.main train --data debian-deps --device cuda "
        f"--encoder tfidf{seed} --out DIR (h200.sh)",
        "commit": COMMIT,
        "dataset": "debian-deps",
        "date": "2026-12-03",
        "machine": H200,
        "raw": f"{HERE}/h200/{name}-metrics.json",
        "test": {k: round(test[k], 2) for k in ("P@1", "P@5", "PSP@5")},
        "selected_epoch": metrics["epoch"],
        "fusion": metrics.get("fusion"),
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
    """Append the rows (after removing this folder's earlier ones)."""
    rows = [row for row in json.loads(ROWS.read_text()) if row.get("raw", "").find(str(HERE)) < 0]
    for name, spec in RUNS.items():
        rows.append(run_row(name, *spec))
    for name in ("tfidf-s0", "tfidf-s1"):
        rows.append(h200_row(name))
    for i in range(1, 6):
        rows.append(bonsai_row(f"bonsai-{i}"))
    for peers in sorted(HERE.glob("peers-*.jsonl")):
        for line in peers.read_text().splitlines():
            rows.append({**json.loads(line), "raw": str(peers)})
    ROWS.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
