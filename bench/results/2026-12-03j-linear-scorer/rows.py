"""Append this folder's rows to docs/benchmarks.json from its files (run from the repository
root: `python bench/results/2026-12-03j-linear-scorer/rows.py`; it replaces the rows it wrote
before)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rows import bonsai_row, h200_tfidf_row, replace_folder_rows, training_row

HERE = Path(__file__).resolve().parent.relative_to(Path.cwd().resolve())
DATE = "2026-12-03"
MACHINE = "2-core AMD EPYC VM, AVX2 only (no AVX-512), torch 2.13.0+cpu (session 35)"
H200 = "one NVIDIA H200 (device machine), torch on the device, --device cuda"
COMMIT = "5a2f38d"
FIRST = "working tree before 5a2f38d (linear_min_points 1, the prior fitted whatever the slice)"
DEBTAGS = "/tmp/debtags/data"
"""The debtags proxy, built by bench/results/2026-12-03i-debtags-proxy/build_debtags.py."""
MINI = "examples/debian-deps-mini"
CASES = {
    "": "cpu-recipe-linear-prior",
    "first-pass": "cpu-recipe-linear-prior-first-pass",
    "avx2": "cpu-recipe-avx2-check",
}
RUNS = {
    # (folder, name): (commit, dataset, command's options, note)
    ("", "s0"): (COMMIT, DEBTAGS, "", "defaults (linear prior)"),
    ("", "s1"): (COMMIT, DEBTAGS, " --seed 1", "defaults (linear prior)"),
    ("", "s2"): (COMMIT, DEBTAGS, " --seed 2", "defaults (linear prior)"),
    ("", "mini"): (COMMIT, MINI, "", "defaults (linear prior off: no weights fitted)"),
    ("avx2", "wn-s0"): ("9beeeb0", "examples/wordnet-taxonomy", "", "defaults (prior off: cost)"),
    ("avx2", "deb"): (
        "9beeeb0",
        "../shared/datasets/debian-deps",
        "",
        "defaults (prior off: cost)",
    ),
    ("first-pass", "grid4"): (FIRST, DEBTAGS, "", "c from the shared weight grid (up to 4)"),
    ("first-pass", "s0"): (FIRST, DEBTAGS, "", "c up to 16"),
    ("first-pass", "s1"): (FIRST, DEBTAGS, " --seed 1", "c up to 16"),
    ("first-pass", "s2"): (FIRST, DEBTAGS, " --seed 2", "c up to 16"),
    ("first-pass", "mini"): (FIRST, MINI, "", "defaults (linear prior off by its cost)"),
}


def main() -> None:
    """Append the rows (after removing this folder's earlier ones)."""
    rows = []
    for (sub, name), (commit, dataset, options, note) in RUNS.items():
        run = {"commit": commit, "dataset": dataset, "options": options, "note": note}
        case = CASES[sub]
        rows.append(training_row(HERE / sub, name, case=case, machine=MACHINE, date=DATE, **run))
    for name in ("bonsai-1", "bonsai-2"):
        rows.append(bonsai_row(HERE / "avx2", name, machine=MACHINE, date=DATE))
    for sub, commit in (("", COMMIT), ("first-pass", FIRST)):
        where = {"machine": H200, "date": DATE, "commit": commit, "script": "h200.sh"}
        case = "gpu-recipe-linear-prior" + ("-first-pass" if sub else "")
        rows.append(h200_tfidf_row(HERE / sub, "deb-s0", case=case, **where))
        rows.append(h200_tfidf_row(HERE / sub, "debtags-s0", case=case, dataset=DEBTAGS, **where))
        peers = HERE / sub / "peers.jsonl"
        for line in peers.read_text().splitlines():
            rows.append({**json.loads(line), "raw": str(peers)})
    replace_folder_rows(HERE, rows)


if __name__ == "__main__":
    main()
