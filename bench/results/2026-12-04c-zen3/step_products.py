"""One-thread fp32 products at a screened training step's shapes (B 256, d 513; 3,800 scored and
2,400 kept label rows), oneDNN's linear against ATen's ``@`` (MKL): time and GFLOP/s of each.
Run from the repository root: ``python bench/results/2026-12-04c-zen3/step_products.py``."""

import time
from collections.abc import Callable

import torch

LINEAR = torch.ops.mkldnn._linear_pointwise
BATCH, DIM = 256, 513


def mean_ms(fn: Callable[[], object], repeats: int = 30) -> float:
    """Mean milliseconds of ``fn`` after two warm-up calls."""
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def products(e: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The step's three products, each two ways."""
    w_t = w.T.contiguous()
    return {
        "Z = E W^T, oneDNN": lambda: LINEAR(e, w, None, "none", [], ""),
        "Z = E W^T, @": lambda: e @ w.T,
        "G^T E, oneDNN (transposed copies)": lambda: LINEAR(
            g.T.contiguous(), e.T.contiguous(), None, "none", [], ""
        ),
        "G^T E, @": lambda: g.T @ e,
        "dE = G W, @": lambda: g @ w,
        "dE = G W, oneDNN (W^T made before)": lambda: LINEAR(g, w_t, None, "none", [], ""),
    }


def main() -> None:
    """Print each product's time at 3,800 and 2,400 label rows."""
    torch.set_num_threads(1)
    e = torch.randn(BATCH, DIM)
    for rows in (3800, 2400):
        w, g = torch.randn(rows, DIM), torch.randn(BATCH, rows)
        cases = products(e, w, g)
        gflop = 2 * BATCH * rows * DIM / 1e9
        for name, fn in cases.items():
            ms = mean_ms(fn)
            print(f"rows {rows}  {name:36s} {ms:7.2f} ms  {gflop / ms * 1e3:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
