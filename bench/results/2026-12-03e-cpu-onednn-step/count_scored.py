"""Ad hoc count (twelfth pass): how many labels a screened step scores and keeps, per member-step,
in a default 4-epoch wordnet-taxonomy run (1c65e7e). Wraps `CpuFusedBackend.weight_operand` (its
rows are the scored labels) and `apply_update` (its `G`'s columns are the kept ones), then prints,
for each quarter of the run's member-steps, their count, mean and 10th / 50th / 90th percentiles;
its output is `count_scored.txt`.

    python bench/results/2026-12-03e-cpu-onednn-step/count_scored.py
"""

from __future__ import annotations

import atexit
import sys
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from elmo_core.cli.main import main
from elmo_core.head.cpu_fused_backend import CpuFusedBackend

counts: dict[str, list[int]] = defaultdict(list)
weight_operand = CpuFusedBackend.weight_operand
apply_update = CpuFusedBackend.apply_update


def counted_operand(self: CpuFusedBackend, w_c: torch.Tensor) -> torch.Tensor:
    """`weight_operand`, counting its rows."""
    counts["scored"].append(w_c.shape[0])
    return weight_operand(self, w_c)


def counted_update(
    self: CpuFusedBackend,
    w_c: torch.Tensor,
    w_op: torch.Tensor,
    g: torch.Tensor,
    *args: Any,
    **kwargs: Any,
) -> None:
    """`apply_update`, counting `G`'s columns."""
    counts["kept"].append(g.shape[1])
    apply_update(self, w_c, w_op, g, *args, **kwargs)


def report() -> None:
    """Print the counts by quarter of the run."""
    for name, values in counts.items():
        array = np.array(values)
        n = len(array)
        for part in range(4):
            piece = array[part * n // 4 : (part + 1) * n // 4]
            print(name, part, len(piece), piece.mean().round(), np.percentile(piece, [10, 50, 90]))


CpuFusedBackend.weight_operand = counted_operand  # type: ignore[method-assign]
CpuFusedBackend.apply_update = counted_update  # type: ignore[method-assign]
atexit.register(report)
sys.argv = [
    "elmo",
    "train",
    "--data",
    "examples/wordnet-taxonomy",
    "--encoder",
    "tfidf",
    "--epochs",
    "4",
    "--out",
    "/tmp/count-scored",
]
main()
