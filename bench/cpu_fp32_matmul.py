"""The CPU evaluation's fp32 product `E W^T` and the head's top-k: torch's `@` (MKL sgemm) against
`reference.matmul_nt` (oneDNN's fp32 matmul, what `ReferenceBackend.logits` and the fp32 products
of a training step's logits use where torch has it), with numpy's `@` (its OpenBLAS) for context.

Random operands of the evaluation's shape (an evaluation batch of `--batch` embeddings of width
`--dim` against `--labels` fp32 weight rows, as the predictor's fp32 copy of the head holds them);
the torch ways are timed interleaved, `--repeats` rounds, so that the noise of a shared machine
hits them alike, and numpy's way last (its OpenBLAS threads keep spinning after each call, which
slowed the torch products timed between its calls by up to 1.8x on the 2-core VM). Prints one
JSON row per way with the median seconds and GFLOP/s, the same for the whole
`ReferenceBackend.topk` (k 100, the head's CPU chunk) with `@` and with `matmul_nt`, then numpy's.

    python bench/cpu_fp32_matmul.py --labels 20359 --dim 1026 --batch 512 --repeats 7

A screened training step's logits (one member at wordnet-taxonomy's shape: about 3,800 scored
labels of width 513, batch 256): `--labels 3800 --dim 513 --batch 256`. A step scores another
number of rows each time: the rows `"what": "fresh rows"` time each way on the first
`--labels - i` rows, a count no call used before (`--repeats` of them per way, interleaved).

`--update` times the step's other fp32 product instead, the update's `G^T E` (`G`: `--batch` x
`--labels`, `E`: `--batch` x `--dim`): MKL's product of the transposed view against
`reference.matmul_tn` (oneDNN on transposed copies). A lane steps its member on one thread:

    python bench/cpu_fp32_matmul.py --update --labels 2400 --dim 513 --batch 256 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from functools import partial

import numpy as np
import torch
from rows import emit

from elmo_core.head import reference
from elmo_core.head.reference import ReferenceBackend, matmul_nt, matmul_tn


def timed(run: Callable[[], object]) -> float:
    """Wall seconds of one `run()`."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(ways: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each way over `repeats` rounds (each round runs every way once, after
    one warm-up call of each)."""
    for run in ways.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            times[name].append(timed(run))
    return {name: statistics.median(values) for name, values in times.items()}


Product = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

TORCH_PRODUCTS: dict[str, Product] = {
    "torch @ (MKL sgemm)": lambda a, b: a @ b.T,
    "matmul_nt (oneDNN)": matmul_nt,
}
"""The two torch ways to compute `a @ b.T` that every measurement compares."""

UPDATE_PRODUCTS: dict[str, Product] = {
    "torch a.T @ b (MKL sgemm)": lambda a, b: a.T @ b,
    "matmul_tn (oneDNN)": matmul_tn,
}
"""The two torch ways to compute the update's `G^T E` that `--update` compares."""


def fresh_rows(e: torch.Tensor, w: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of each of `TORCH_PRODUCTS` over `repeats` calls each, every call on a row
    count of `w` that no call used before (interleaved, one fewer row each call)."""
    times: dict[str, list[float]] = {name: [] for name in TORCH_PRODUCTS}
    rows = w.shape[0]
    for _ in range(repeats):
        for name, product in TORCH_PRODUCTS.items():
            rows -= 1
            times[name].append(timed(partial(product, e, w[:rows])))
    return {name: statistics.median(values) for name, values in times.items()}


def topk_with(product: Product) -> Callable:
    """`ReferenceBackend.topk` with its logits' product replaced by `product` (a @ b.T)."""

    class Backend(ReferenceBackend):
        def logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
            return product(reference.embedding_operand(embedding, weight), weight)

    return Backend().topk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=20359)
    parser.add_argument("--dim", type=int, default=1026)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    parser.add_argument("--update", action="store_true", help="time G^T E instead (see above)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    e = torch.randn(args.batch, args.dim, generator=gen)
    w = torch.randn(args.labels, args.dim, generator=gen)
    flops = 2.0 * args.batch * args.dim * args.labels
    base = {
        "bench": "cpu_fp32_matmul",
        "date": date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "nproc": os.cpu_count()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "labels": args.labels,
        "dim": args.dim,
        "batch": args.batch,
        "repeats": args.repeats,
    }

    def emit_product(way: str, secs: float, what: str = "product") -> None:
        row = {**base, "what": what, "way": way, "s": secs, "gflops": flops / secs / 1e9}
        emit(row, args.json)

    if args.update:
        g = torch.randn(args.batch, args.labels, generator=gen)
        e = torch.randn(args.batch, args.dim, generator=gen)
        ways = {name: partial(product, g, e) for name, product in UPDATE_PRODUCTS.items()}
        for way, secs in interleaved(ways, args.repeats).items():
            emit_product(way, secs, "update product")
        return
    products = interleaved(
        {name: partial(product, e, w) for name, product in TORCH_PRODUCTS.items()}, args.repeats
    )
    for way, secs in products.items():
        emit_product(way, secs)
    for way, secs in fresh_rows(e, w, args.repeats).items():
        emit({**base, "what": "fresh rows", "way": way, "s": secs}, args.json)
    chunk = reference.memory_chunk(args.labels, args.dim, args.batch, torch.device("cpu"), False)
    topks = interleaved(
        {
            name: partial(topk_with(product), w, e, args.k, chunk_size=chunk)
            for name, product in TORCH_PRODUCTS.items()
        },
        args.repeats,
    )
    for way, secs in topks.items():
        emit(
            {**base, "what": "topk", "k": args.k, "chunk": chunk, "way": way, "s": secs}, args.json
        )
    numpy = interleaved({"numpy": lambda: np.matmul(e.numpy(), w.numpy().T)}, args.repeats)
    emit_product("numpy @ (OpenBLAS)", numpy["numpy"])


if __name__ == "__main__":
    main()
