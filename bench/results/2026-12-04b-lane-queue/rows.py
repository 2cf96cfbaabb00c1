"""Append this folder's rows to docs/benchmarks.json from its files (run from the repository
root: `python bench/results/2026-12-04b-lane-queue/rows.py`; it replaces the rows it wrote
before)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rows import bonsai_row, h200_tfidf_row, replace_folder_rows, training_row

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
DATE = "2026-12-04"
MACHINE = "2-core AMD EPYC VM with AVX-512 (avx512_bf16, no AMX), torch 2.13.0+cpu (session 37)"
H200 = "one NVIDIA H200 (device machine), torch on the device, --device cuda"
AVX2 = MACHINE + ", limited to AVX2 (ELMO_HEAD_BACKEND=cpu-fused, ATEN/oneDNN/MKL/numba on AVX2)"
NEW, OLD = "6cd4102", "8e443ee"
WORDNET = "examples/wordnet-taxonomy"
SYNTH = "/tmp/scale/syn100k (scale.sh: elmo data synth, 100K train / 10K test, 50K labels)"
RUNS = {
    # name: (commit, dataset, machine, note)
    "wn-avx2-new-1": (NEW, WORDNET, AVX2, "ab.sh: queued lanes"),
    "wn-avx2-old-1": (OLD, WORDNET, AVX2, "ab.sh: a barrier per step (the previous code)"),
    "wn-avx2-new-2": (NEW, WORDNET, AVX2, "ab.sh: queued lanes"),
    "wn-avx2-old-2": (OLD, WORDNET, AVX2, "ab.sh: a barrier per step (the previous code)"),
    "wn-avx2-1": (NEW, WORDNET, AVX2, "run.sh: defaults, AVX2 code paths"),
    "wn-1": (NEW, WORDNET, MACHINE, "run.sh: defaults"),
    "wn-avx2-2": (NEW, WORDNET, AVX2, "run.sh: defaults, AVX2 code paths"),
    "wn-2": (NEW, WORDNET, MACHINE, "run.sh: defaults"),
    "deb": (NEW, "../shared/datasets/debian-deps", MACHINE, "run.sh: defaults"),
    "mini": (NEW, "examples/debian-deps-mini", MACHINE, "run.sh: defaults"),
}
SCALE = {
    # name: (commit, note), all `--epochs 2` on SYNTH
    "syn-old-warmup": (OLD, "scale.sh: the previous code's first run (warm-up)"),
    "syn-new-1": ("fb8548e", "scale.sh: queued lanes"),
    "syn-old-1": (OLD, "scale.sh: a barrier per step"),
    "syn-new-2": ("fb8548e", "scale.sh: queued lanes"),
    "syn-old-2": (OLD, "scale.sh: a barrier per step"),
    "syn-new-3": ("fb8548e", "scale.sh: queued lanes"),
    "syn-old-3": (OLD, "scale.sh: a barrier per step"),
}


def main() -> None:
    """Append the rows (after removing this folder's earlier ones)."""
    rows = []
    for name, (commit, dataset, machine, note) in RUNS.items():
        run = {"commit": commit, "dataset": dataset, "options": "", "note": note}
        rows.append(
            training_row(HERE, name, case="cpu-lane-queue", machine=machine, date=DATE, **run)
        )
    for name, (commit, note) in SCALE.items():
        run = {"commit": commit, "dataset": SYNTH, "options": " --epochs 2", "note": note}
        rows.append(
            training_row(HERE, name, case="cpu-lane-queue", machine=MACHINE, date=DATE, **run)
        )
    for index in range(1, 6):
        rows.append(bonsai_row(HERE, f"bonsai-{index}", machine=MACHINE, date=DATE))
    where = {"machine": H200, "date": DATE, "commit": "ec6578a", "script": "h200.sh"}
    case = "gpu-lane-queue"
    rows.append(h200_tfidf_row(HERE, "deb-s0", case=case, **where))
    rows.append(
        h200_tfidf_row(HERE, "mini-s0", case=case, dataset="examples/debian-deps-mini", **where)
    )
    replace_folder_rows(HERE, rows)


if __name__ == "__main__":
    main()
