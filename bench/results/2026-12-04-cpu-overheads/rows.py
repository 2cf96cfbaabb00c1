"""Append this folder's rows to docs/benchmarks.json from its files (run from the repository
root: `python bench/results/2026-12-04-cpu-overheads/rows.py`; it replaces the rows it wrote
before)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rows import bonsai_row, h200_tfidf_row, replace_folder_rows, training_row

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
DATE = "2026-12-04"
MACHINE = "2-core AMD EPYC VM with AVX-512 (avx512_bf16, no AMX), torch 2.13.0+cpu (session 36)"
AVX2 = MACHINE + ", limited to AVX2 (ELMO_HEAD_BACKEND=cpu-fused, ATEN/oneDNN/MKL/numba on AVX2)"
H200 = "one NVIDIA H200 (device machine), torch on the device, --device cuda"
COMMIT = "2171ba9"
WORDNET = "examples/wordnet-taxonomy"
EVERY = " --config bench/results/2026-12-04-cpu-overheads/every-epoch-config.json"
SYNTH = "/tmp/scale/syn100k (scale.sh: elmo data synth, 100K train / 10K test, 50K labels)"
RUNS = {
    # name: (commit, dataset, command's options, machine, note)
    "wn-s0": (COMMIT, WORDNET, "", MACHINE, "defaults"),
    "wn-s0-every-epoch": (COMMIT, WORDNET, EVERY, MACHINE, "a checkpoint every epoch (as before)"),
    "wn-s1": (COMMIT, WORDNET, " --seed 1", MACHINE, "defaults"),
    "wn-s0-avx2": (COMMIT, WORDNET, "", AVX2, "defaults, AVX2 code paths"),
    "deb": (COMMIT, "../shared/datasets/debian-deps", "", MACHINE, "defaults"),
    "mini": (COMMIT, "examples/debian-deps-mini", "", MACHINE, "defaults"),
    "syn-old-1": ("dc9c51f", SYNTH, " --epochs 2", MACHINE, "the previous code, first run"),
    "syn-new": ("3ad18b7", SYNTH, " --epochs 2", MACHINE, "this pass"),
    "syn-old-2": ("dc9c51f", SYNTH, " --epochs 2", MACHINE, "the previous code"),
}


def main() -> None:
    """Append the rows (after removing this folder's earlier ones)."""
    rows = []
    for name, (commit, dataset, options, machine, note) in RUNS.items():
        run = {"commit": commit, "dataset": dataset, "options": options, "note": note}
        rows.append(
            training_row(HERE, name, case="cpu-recipe-overheads", machine=machine, date=DATE, **run)
        )
    for index in range(1, 6):
        rows.append(bonsai_row(HERE, f"bonsai-{index}", machine=MACHINE, date=DATE))
    where = {"machine": H200, "date": DATE, "commit": "14720a7", "script": "h200.sh"}
    case = "gpu-recipe-overheads"
    rows.append(h200_tfidf_row(HERE, "deb-s0", case=case, **where))
    rows.append(
        h200_tfidf_row(HERE, "mini-s0", case=case, dataset="examples/debian-deps-mini", **where)
    )
    replace_folder_rows(HERE, rows)


if __name__ == "__main__":
    main()
