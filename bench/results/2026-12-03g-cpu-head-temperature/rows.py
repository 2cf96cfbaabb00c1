"""Append this pass's rows to docs/benchmarks.json from the files of this folder (run once, from
the repository root: `python bench/results/2026-12-03g-cpu-head-temperature/rows.py`)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rows import bonsai_row, h200_tfidf_row, replace_folder_rows, training_row

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
DATE = "2026-12-03"
MACHINE = "2-core AMD EPYC VM with AVX2 only (no AVX-512), torch 2.13.0+cpu (session 33)"
H200 = "one NVIDIA H200 (device machine), torch on the device, --device cuda"
CASE = "cpu-recipe-fourteenth-pass"
OLD = "d658edc"
NEW = "adf2b87"
RUNS = {
    # name: (commit, dataset, command's options, note)
    "base-1": (OLD, "examples/wordnet-taxonomy", "", "before this pass (cold numba cache)"),
    "temp-1": (NEW, "examples/wordnet-taxonomy", "", "head temperature fitted"),
    "temp-s1": (NEW, "examples/wordnet-taxonomy", " --seed 1", "head temperature fitted"),
    "temp-s2": (NEW, "examples/wordnet-taxonomy", " --seed 2", "head temperature fitted"),
    "temp-s3": (NEW, "examples/wordnet-taxonomy", " --seed 3", "head temperature fitted"),
    "temp-s4": (NEW, "examples/wordnet-taxonomy", " --seed 4", "head temperature fitted"),
    "init1": (
        OLD,
        "examples/wordnet-taxonomy",
        " --config cfg-init1.json",
        "head.init_from_label_texts 1 (tried, not kept)",
    ),
    "deb": (OLD, "../shared/datasets/debian-deps", "", "before this pass; shared the CPU"),
    "deb-new": (NEW, "../shared/datasets/debian-deps", "", "head temperature fitted"),
    "deb-fp32": (NEW, "../shared/datasets/debian-deps", " --precision fp32", "fp32 head"),
    "mini-new": (NEW, "examples/debian-deps-mini", "", "head temperature fitted"),
}
for i in (1, 2, 3, 4):
    RUNS[f"old-s{i}"] = (OLD, "examples/wordnet-taxonomy", f" --seed {i}", "before this pass")
for i in (1, 2, 3):
    RUNS[f"e3-old{i}"] = (OLD, "examples/wordnet-taxonomy", " --epochs 3", "3 epochs, old")
    RUNS[f"e3-new{i}"] = (
        OLD + "+matmul_tn",
        "examples/wordnet-taxonomy",
        " --epochs 3",
        "3 epochs, G^T E through matmul_tn (adf2b87's change, before the temperature)",
    )


def main() -> None:
    """Append the rows."""
    rows = []
    for name, (commit, dataset, options, note) in RUNS.items():
        if (HERE / f"{name}-metrics.json").exists():
            run = {"commit": commit, "dataset": dataset, "options": options, "note": note}
            rows.append(training_row(HERE, name, case=CASE, machine=MACHINE, date=DATE, **run))
    for name in ("new-tfidf", "new-tfidf-s1", "old-tfidf", "old-tfidf-s1"):
        commit = NEW if name.startswith("new") else OLD
        where = {"machine": H200, "date": DATE, "commit": commit, "script": "h200-old-new.sh"}
        rows.append(h200_tfidf_row(HERE, name, case="gpu-recipe-fourteenth-pass", **where))
    for i in range(1, 6):
        rows.append(bonsai_row(HERE, f"bonsai-{i}", machine=MACHINE, date=DATE))
    for line in (HERE / "update-product.jsonl").read_text().splitlines():
        rows.append({**json.loads(line), "raw": f"{HERE}/update-product.jsonl"})
    replace_folder_rows(HERE, rows)


if __name__ == "__main__":
    main()
