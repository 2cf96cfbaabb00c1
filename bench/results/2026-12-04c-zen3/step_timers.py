"""Wall seconds of the training step's calls inside a real `elmo train` run, per thread (each
member lane apart): wraps the head step's products and kernels, the row-sparse AdamW and each
lane's whole member step with timers, runs the CLI, prints a table to stderr at the end. Run
from the repository root: ``python bench/results/2026-12-04c-zen3/step_timers.py DATA OUT
EPOCHS``."""

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

import elmo_core.head.cpu_fused_backend as fused
import elmo_core.head.cpu_kernels as kernels
import elmo_core.head.members as members
import elmo_core.head.reference as reference
import elmo_core.training.member_lanes as member_lanes
import elmo_core.training.row_sparse_adamw as row_sparse_adamw
import elmo_core.training.row_sparse_kernels as row_sparse_kernels

SECONDS: defaultdict[tuple[str, str], float] = defaultdict(float)
CALLS: defaultdict[tuple[str, str], int] = defaultdict(int)


def timed(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    """``fn`` adding its wall time to (this thread, ``label``)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            key = (threading.current_thread().name, label)
            SECONDS[key] += time.perf_counter() - start
            CALLS[key] += 1

    return call


def wrap(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by its timed version."""
    setattr(owner, name, timed(getattr(owner, name), label))


def main() -> None:
    """Wrap, train, print the table."""
    data, out, epochs = sys.argv[1:4]
    wrap(reference, "matmul_nt", "matmul_nt (Z; evaluation products)")
    wrap(fused, "matmul_tn", "matmul_tn (G^T E)")
    wrap(reference.ReferenceBackend, "step", "head step")
    for name in ("weight_operand", "gradient", "column_peaks", "apply_update"):
        wrap(fused.CpuFusedBackend, name, name)
    wrap(kernels, "sgd_round_", "sgd_round_")
    wrap(reference, "screened_rows", "screened_rows")
    wrap(reference, "kept_columns", "kept_columns")
    wrap(row_sparse_kernels, "adamw_rows_", "adamw_rows_")
    wrap(row_sparse_adamw.RowSparseAdamW, "step_parameters", "step_parameters")
    wrap(row_sparse_adamw.RowSparseAdamW, "_row_betas", "_row_betas")
    wrap(members.MemberHeads, "member_step", "member_step")
    wrap(torch.Tensor, "backward", "backward")
    submit = member_lanes.MemberLanes.submit

    def timed_submit(self: Any, step: Callable[[int], Any], count: int) -> Any:
        return submit(self, timed(step, "lane's whole member step"), count)

    member_lanes.MemberLanes.submit = timed_submit  # type: ignore[method-assign]
    from elmo_core.cli.main import main as elmo

    sys.argv = ["elmo", "train", "--data", data, "--encoder", "tfidf", "--out", out]
    sys.argv += ["--epochs", epochs]
    try:
        elmo()
    finally:
        for key in sorted(SECONDS):
            thread, label = key
            seconds, calls = SECONDS[key], CALLS[key]
            line = f"{thread:22s} {label:36s} {seconds:7.2f} s {calls:5d} calls"
            print(f"{line} {seconds / calls * 1e3:7.2f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
