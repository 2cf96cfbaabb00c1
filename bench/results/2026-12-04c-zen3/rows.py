"""Append this folder's rows to docs/benchmarks.json from its files (run from the repository
root: `python bench/results/2026-12-04c-zen3/rows.py`; it replaces the rows it wrote before)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rows import bonsai_row, replace_folder_rows, training_row

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
DATE = "2026-12-04"
MACHINE = (
    "2-core AMD EPYC VM, family 25 model 1 (Zen 3), AVX2 without AVX-512, head backend "
    "cpu-fused, torch 2.13.0+cpu (session 39)"
)
COMMIT = "15f8f9e"
RUNS = {
    # name: (dataset, note)
    "mini": ("examples/debian-deps-mini", "run.sh: defaults, numba's cache cold"),
    "wn-1": ("examples/wordnet-taxonomy", "run.sh: defaults"),
    "wn-2": ("examples/wordnet-taxonomy", "run.sh: defaults"),
    "deb": ("../shared/datasets/debian-deps", "run.sh: defaults"),
}


def main() -> None:
    """Append the rows (after removing this folder's earlier ones)."""
    rows = []
    for name, (dataset, note) in RUNS.items():
        run = {"commit": COMMIT, "dataset": dataset, "options": "", "note": note}
        rows.append(training_row(HERE, name, case="cpu-zen3", machine=MACHINE, date=DATE, **run))
    for index in range(1, 4):
        rows.append(bonsai_row(HERE, f"bonsai-{index}", machine=MACHINE, date=DATE))
    replace_folder_rows(HERE, rows)


if __name__ == "__main__":
    main()
