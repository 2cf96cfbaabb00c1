"""Append this check's rows to docs/benchmarks.json from the files of this folder (run once, from
the repository root: `python bench/results/2026-12-03h-cpu-avx512-check/rows.py`; it replaces the
rows it wrote before)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rows import bonsai_row, h200_tfidf_row, replace_folder_rows, training_row

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
DATE = "2026-12-03"
MACHINE = "2-core AMD EPYC VM with AVX-512 (avx512_bf16, no AMX), torch 2.13.0+cpu (session 34)"
H200 = "one NVIDIA H200 (device machine), torch on the device, --device cuda"
CASE = "cpu-recipe-closing-check"
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


def main() -> None:
    """Append the rows (after removing this folder's earlier ones)."""
    rows = []
    for name, (commit, dataset, options, note) in RUNS.items():
        run = {"commit": commit, "dataset": dataset, "options": options, "note": note}
        rows.append(training_row(HERE, name, case=CASE, machine=MACHINE, date=DATE, **run))
    for name in ("tfidf-s0", "tfidf-s1"):
        where = {"machine": H200, "date": DATE, "commit": COMMIT, "script": "h200.sh"}
        rows.append(h200_tfidf_row(HERE, name, case="gpu-recipe-closing-check", **where))
    for i in range(1, 6):
        rows.append(bonsai_row(HERE, f"bonsai-{i}", machine=MACHINE, date=DATE))
    for peers in sorted(HERE.glob("peers-*.jsonl")):
        for line in peers.read_text().splitlines():
            rows.append({**json.loads(line), "raw": str(peers)})
    replace_folder_rows(HERE, rows)


if __name__ == "__main__":
    main()
