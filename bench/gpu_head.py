"""GPU benchmarks of the Triton head (issues 3 and 6): head steps, top-k, 100M labels, end to end.

Runs on a CUDA machine with torch and triton (and transformers for ``e2e``) only:

    python3 bench/gpu_head.py --cases head,topk --json out.json [--phases] [--sweep]

Shapes are the issue's: d=768, batch 128, 5 positives per row; the time is the median of CUDA-event
timed steps after warm-up, the peak ``torch.cuda.max_memory_allocated`` over the timed steps
(weights included). Prints a table; ``--json`` writes the rows with the raw numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elmo_core.dtypes import storage_dtype
from elmo_core.head import triton_kernels as tk

GIB = 1024**3
HEAD_SIZES = (670_091, 2_812_281, 8_600_000)


def init_weight(labels: int, dim: int, dtype: torch.dtype, std: float = 0.02) -> torch.Tensor:
    """Random weights built in 1M-row pieces (no L x d fp32 transient)."""
    w = torch.empty(labels, dim, device="cuda", dtype=dtype)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for r0 in range(0, labels, 1 << 20):
        r1 = min(labels, r0 + (1 << 20))
        w[r0:r1] = (torch.randn(r1 - r0, dim, device="cuda", generator=gen) * std).to(dtype)
    return w


def batch_inputs(labels: int, dim: int, batch: int, positives: int = 5):
    gen = torch.Generator(device="cuda").manual_seed(1)
    emb = torch.randn(batch, dim, device="cuda", generator=gen)
    rows = torch.arange(batch, device="cuda").repeat_interleave(positives)
    cols = torch.randint(0, labels, (batch * positives,), device="cuda", generator=gen)
    return emb, rows, cols


def time_it(fn, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(median ms, peak GiB) of ``fn`` over ``steps`` event-timed calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), torch.cuda.max_memory_allocated() / GIB


def row(case: str, labels: int, precision: str, ms: float, peak: float, **extra) -> dict:
    return {
        "case": case,
        "labels": labels,
        "precision": precision,
        "ms_per_step": round(ms, 3),
        "peak_gib": round(peak, 3),
        **extra,
    }


def bench_head(labels, precision, cfg, steps, dim=768, batch=128, phases=False) -> dict:
    weight = init_weight(labels, dim, storage_dtype(precision))
    emb, rows, cols = batch_inputs(labels, dim, batch)
    static = torch.cuda.memory_allocated() / GIB
    counter = iter(range(1 << 30))

    def step():
        tk.head_step(weight, emb, rows, cols, 0.05, seed=tk.step_seed(0, next(counter)), config=cfg)

    ms, peak = time_it(step, steps)
    extra = {"static_gib": round(static, 3), "config": dataclasses.asdict(cfg)}
    if phases:
        plan = tk.StepPlan(weight, emb, rows, cols, 0.05, seed=1, config=cfg)

        def logits_only():
            for r0, n in plan.chunks:
                plan.logits_chunk(r0, n)

        def update_only():
            for r0, n in plan.chunks:
                plan.update_chunk(r0, n)

        def prepare_only():
            tk.StepPlan(weight, emb, rows, cols, 0.05, seed=1, config=cfg)

        extra["phases_ms"] = {
            "prepare (sort positives, buffers)": round(time_it(prepare_only, steps)[0], 3),
            "logits+G kernel, all chunks": round(time_it(logits_only, steps)[0], 3),
            "dE+update kernel, all chunks": round(time_it(update_only, steps)[0], 3),
        }
    return row("head", labels, precision, ms, peak, **extra)


def bench_api(labels, precision, steps) -> dict:
    """The issue's entry point: ``elmo_core.bench.make_head_step`` (``XMCHead`` with the backend it
    picks on CUDA, argument checks and all)."""
    from elmo_core.bench import make_head_step

    torch.set_default_device("cuda")
    try:
        step = make_head_step(labels, 768, 128, precision)
    finally:
        torch.set_default_device(None)
    static = torch.cuda.memory_allocated() / GIB
    ms, peak = time_it(step, steps)
    backend = step.head.backend.name
    return row("head", labels, precision, ms, peak, via="make_head_step", backend=backend,
               static_gib=round(static, 3))  # fmt: skip


def bench_topk(labels, queries, steps, dim=768, k=10, config=tk.DEFAULT_CONFIG) -> dict:
    weight = init_weight(labels, dim, torch.float8_e4m3fn)
    emb = torch.randn(queries, dim, device="cuda")
    ms, peak = time_it(lambda: tk.topk(weight, emb, k, config=config), steps)
    return row(f"topk{queries}", labels, "fp8", ms, peak, k=k, config=dataclasses.asdict(config))


def bench_scale(labels, steps, dim=768, batch=128) -> dict:
    cfg = tk.DEFAULT_CONFIG
    weight = init_weight(labels, dim, torch.float8_e4m3fn)
    emb, rows, cols = batch_inputs(labels, dim, batch)
    counter = iter(range(1 << 30))
    grads = []

    def step():
        grads.append(
            tk.head_step(weight, emb, rows, cols, 0.05, seed=tk.step_seed(0, next(counter)))
        )

    ms, peak = time_it(step, steps, warmup=1)
    finite = bool(torch.isfinite(torch.stack(grads)).all())
    sample = weight[-(1 << 16) :].to(torch.float32)
    last_rows_finite = bool(torch.isfinite(sample).all())
    return row(
        "scale",
        labels,
        "fp8",
        ms,
        peak,
        grads_finite=finite,
        last_rows_finite=last_rows_finite,
        config=dataclasses.asdict(cfg),
    )


def bench_e2e(labels, steps, batch=128, tokens=128, checkpointing=True) -> dict:
    """BERT-base-shaped encoder (random init, bf16 weights, activation checkpointing per layer
    unless disabled, fused AdamW) + the fp8 head; one step = encoder forward, head step, encoder
    backward, optimizer step."""
    from transformers import BertConfig, BertModel

    config = BertConfig()
    encoder = BertModel(config, add_pooling_layer=False).to("cuda", torch.bfloat16)
    if checkpointing:
        encoder.gradient_checkpointing_enable()
    encoder.train()
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-5, fused=True)
    weight = init_weight(labels, config.hidden_size, torch.float8_e4m3fn)
    gen = torch.Generator(device="cuda").manual_seed(2)
    ids = torch.randint(0, config.vocab_size, (batch, tokens), device="cuda", generator=gen)
    _, rows, cols = batch_inputs(labels, config.hidden_size, batch)
    counter = iter(range(1 << 30))

    def step():
        out = encoder(input_ids=ids).last_hidden_state[:, 0]
        grad = tk.head_step(weight, out, rows, cols, 0.05, seed=tk.step_seed(0, next(counter)))
        out.backward(grad.to(out.dtype))
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms, peak = time_it(step, steps)
    return row(
        "e2e", labels, "fp8", ms, peak, batch=batch, tokens=tokens, checkpointing=checkpointing
    )


SWEEP = [
    tk.KernelConfig(),
    tk.KernelConfig(reference_bits=True),
    tk.KernelConfig(update_block_l=128, update_warps=16, update_stages=4),
    tk.KernelConfig(native_fp8=True),
]


TOPK_SWEEP = [
    tk.KernelConfig(logits_stages=4),
    tk.KernelConfig(logits_stages=5),
    tk.KernelConfig(block_k=128),
    tk.KernelConfig(block_k=128, logits_stages=4),
    tk.KernelConfig(block_k=256, logits_stages=3),
    tk.KernelConfig(native_fp8=True),
]


def print_table(rows: list[dict]) -> None:
    print(f"{'case':<8} {'labels':>11} {'prec':<5} {'ms/step':>9} {'peak GiB':>9}  notes")
    for r in rows:
        notes = {k: v for k, v in r.items() if k in ("phases_ms", "grads_finite", "error")}
        if "config" in r and r["config"] != dataclasses.asdict(tk.DEFAULT_CONFIG):
            default = dataclasses.asdict(tk.DEFAULT_CONFIG)
            notes["config"] = {k: v for k, v in r["config"].items() if default[k] != v}
        print(
            f"{r['case']:<8} {r['labels']:>11,} {r['precision']:<5} {r['ms_per_step']:>9.3f} "
            f"{r['peak_gib']:>9.3f}  {json.dumps(notes) if notes else ''}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cases", default="head,topk", help="head,api,topk,scale,e2e (comma-separated)"
    )
    ap.add_argument("--labels", default=None, help="head label counts, comma-separated")
    ap.add_argument("--precisions", default="fp8,bf16")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--phases", action="store_true", help="time the kernels of a step apart")
    ap.add_argument("--sweep", action="store_true", help="kernel configs at 2.81M fp8")
    ap.add_argument("--scale-labels", type=int, default=100_000_000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cases = args.cases.split(",")
    sizes = [int(x) for x in args.labels.split(",")] if args.labels else list(HEAD_SIZES)
    print(
        f"# {torch.cuda.get_device_name()} torch {torch.__version__} "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        flush=True,
    )
    rows: list[dict] = []

    def record(fn, *a, **kw):
        try:
            r = fn(*a, **kw)
        except Exception as exc:  # a failed case is reported in the table, the others still run
            r = row(fn.__name__.removeprefix("bench_"), -1, "-", float("nan"), float("nan"))
            r["error"] = f"{type(exc).__name__}: {exc}"[:300]
        gc.collect()
        torch.cuda.empty_cache()
        rows.append(r)
        print(json.dumps(r), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))

    if args.sweep:
        for cfg in SWEEP:
            record(bench_head, 2_812_281, "fp8", cfg, args.steps)
    if "head" in cases:
        for precision in args.precisions.split(","):
            for labels in sizes:
                record(
                    bench_head, labels, precision, tk.DEFAULT_CONFIG, args.steps, phases=args.phases
                )
    if "api" in cases:
        for precision in args.precisions.split(","):
            record(bench_api, 2_812_281, precision, args.steps)
    if "topk" in cases:
        for queries in (1, 256):
            record(bench_topk, 2_812_281, queries, args.steps)
    if "topk-sweep" in cases:
        for cfg in TOPK_SWEEP:
            record(bench_topk, 2_812_281, 1, args.steps, config=cfg)
    if "scale" in cases:
        record(bench_scale, args.scale_labels, 3)
    if "e2e" in cases:
        record(bench_e2e, 2_812_281, 10)
        record(bench_e2e, 2_812_281, 10, checkpointing=False)
    print_table(rows)


if __name__ == "__main__":
    main()
