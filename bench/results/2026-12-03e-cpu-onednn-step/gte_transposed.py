"""Ad hoc timing (twelfth pass, tried and not kept): the update's product `G^T E` for one member at
wordnet-taxonomy's shape (2,380 kept labels of 3,800 scored, width 513, batch 256) with MKL's `@`
on the transposed view, through `matmul_nt` (oneDNN) with the transposed copies it needs, and with
MKL on a transposed copy of `G`. Three rounds, each way's mean over 40 calls, in ms;
its output is `gte_transposed.txt`.

    python bench/results/2026-12-03e-cpu-onednn-step/gte_transposed.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from elmo_core.head.reference import matmul_nt


def mean_ms(run: Callable[[], object], calls: int = 40) -> float:
    """Mean milliseconds of `run()` over `calls` calls after two warm-up calls."""
    run()
    run()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    torch.manual_seed(0)
    e, w = torch.randn(256, 513), torch.randn(3800, 513)
    kept = torch.sort(torch.randperm(3800)[:2380]).values
    g = (e @ w.T).index_select(1, kept)
    ways: dict[str, Callable[[], object]] = {
        "mkl": lambda: g.T @ e,
        "nt_copies": lambda: matmul_nt(g.T.contiguous(), e.T.contiguous()),
        "mkl_gt": lambda: g.T.contiguous() @ e,
    }
    for _ in range(3):
        print([f"{name} {mean_ms(run):.2f}" for name, run in ways.items()])


if __name__ == "__main__":
    main()
