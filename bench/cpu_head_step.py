"""CPU head step time per storage precision, and its ratio to the fp32 step (issue 15, item 1).

Builds one head per precision (``elmo_core.bench.make_head_step``: unit-Gaussian embeddings, 5
random positives per row, the head's automatic chunk size) and times single steps interleaved
across the precisions (fp32, bf16, fp8, fp32, ...), so that the noise of a shared machine hits
them alike; prints one JSON row per precision and label count with the median over ``--repeats``.
``--rounding`` adds the time of the stochastic rounding alone for the low precisions: for the
reference backend the upcast of every weight chunk, its random bits and its rounding (fp32
values, not stored back); for ``cpu-fused`` and ``cpu-bf16`` their fused update kernel
(``cpu_kernels.sgd_round_``) on every chunk with a zero update (upcast, bits, rounding and the
store; the weights stay as they are).

    python bench/cpu_head_step.py --labels 50000 200000 --dim 512 --batch 128 --repeats 7
    python bench/cpu_head_step.py --labels 50000 --threads 1 --rounding
    python bench/cpu_head_step.py --labels 50000 --rounding-workers 1 2

``--rounding-workers`` times the low precisions once per number of rounding threads
(``rounding.WORKERS``; 1 is the single-threaded rounding), interleaved with the rest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from elmo_core.bench import make_head_step
from elmo_core.head import rounding
from elmo_core.head.head import XMCHead

PRECISIONS = ("fp32", "bf16", "fp8")


def rounding_pass(head: XMCHead, batch: int) -> Callable[[], None]:
    """Draw the bits and stochastically round every row of ``head``'s weights once, chunk by chunk
    as the CPU step does (the step's rounding, without the products)."""
    weight = head.weight
    chunk = head.backend.default_chunk(weight.shape[0], weight.shape[1], batch, weight)
    if head.backend.name in ("cpu-fused", "cpu-bf16"):
        from elmo_core.head import cpu_kernels

        zero = torch.zeros(min(chunk, weight.shape[0]), weight.shape[1], dtype=torch.bfloat16)

        def fused() -> None:
            for r0 in range(0, weight.shape[0], chunk):
                w = weight[r0 : r0 + chunk]
                cpu_kernels.sgd_round_(w, zero[: w.shape[0]], 0.0, 0.0, 7, r0)

        return fused

    def run() -> None:
        for r0 in range(0, weight.shape[0], chunk):
            w32 = weight[r0 : r0 + chunk].to(torch.float32)
            rounding.stochastic_round_(w32, weight.dtype, 7, r0)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--rounding", action="store_true", help="also time the rounding alone")
    parser.add_argument(
        "--rounding-workers",
        type=int,
        nargs="+",
        default=[0],
        help="threads rounding the blocks, one run each (0: torch's thread count)",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["reference"],
        help="head backends of the bf16/fp8 steps (reference, cpu-fused, cpu-bf16); fp32 runs the "
        "reference",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for labels in args.labels:
        runs: dict[tuple[str, str, int, str], Callable[[], object]] = {}
        for precision in PRECISIONS:
            for backend in ["reference"] if precision == "fp32" else args.backends:
                step = make_head_step(labels, args.dim, args.batch, precision, backend=backend)
                for workers in [0] if precision == "fp32" else args.rounding_workers:
                    runs[precision, "step", workers, backend] = step
                    if args.rounding and precision != "fp32":
                        runs[precision, "rounding", workers, backend] = rounding_pass(
                            step.head, args.batch
                        )
        times: dict[tuple[str, str, int, str], list[float]] = {name: [] for name in runs}
        for i in range(args.warmup + args.repeats):
            for name, fn in runs.items():
                rounding.WORKERS = name[2] or None
                start = time.perf_counter()
                fn()
                if i >= args.warmup:
                    times[name].append((time.perf_counter() - start) * 1000.0)
        rounding.WORKERS = None
        base = statistics.median(times["fp32", "step", 0, "reference"])
        for (precision, part, workers, backend), samples in times.items():
            ms = statistics.median(samples)
            row = {
                "precision": precision,
                "backend": backend,
                "part": part,
                "rounding_workers": workers or torch.get_num_threads(),
                "labels": labels,
                "dim": args.dim,
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "ms_per_step_median": round(ms, 2),
                "ratio_to_fp32": round(ms / base, 3),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
