"""Head benchmarks callable with torch (and triton) only: ``make_head_step`` and ``bench_head``.

The GPU comparisons call ``make_head_step`` directly; ``elmo bench head`` prints ``bench_head``'s
dictionary. Memory: on CUDA ``static_gib`` is ``torch.cuda.memory_allocated`` after building the
head and its batch and ``peak_gib`` the ``max_memory_allocated`` over the timed steps; on the CPU,
which has no allocator statistics, ``static_gib`` is the bytes of the head's tensors and the batch,
and ``peak_gib`` the process's peak resident set size (which includes Python and torch).
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time

import torch

from elmo_core.head import XMCHead

GIB = 1024**3
POSITIVES_PER_ROW = 5


class HeadStep:
    """A zero-argument callable doing one full training step of ``head`` on a fixed batch."""

    def __init__(self, head: XMCHead, embedding: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor, lr: float) -> None:  # fmt: skip
        self.head, self.embedding, self.rows, self.cols, self.lr = head, embedding, rows, cols, lr

    def __call__(self) -> torch.Tensor:
        """One step; returns the embedding's gradient (B x d fp32)."""
        return self.head.step(self.embedding, self.rows, self.cols, self.lr)

    @property
    def nbytes(self) -> int:
        """Bytes of the head's storage and of the batch."""
        batch = (self.embedding, self.rows, self.cols)
        return self.head.nbytes + sum(t.nbytes for t in batch)


def make_head_step(
    labels: int,
    dim: int,
    batch: int,
    precision: str,
    chunks: int | None = None,
    lr: float = 0.05,
    backend: str | None = None,
) -> HeadStep:
    """A head of ``labels`` x ``dim`` in ``precision`` on ``torch.get_default_device()`` and a
    fixed random batch of ``batch`` unit-Gaussian embeddings with 5 random positive labels per
    row; ``chunks`` is the number of label chunks (None: the head's automatic chunk size);
    ``backend`` forces the head's backend (None: the head's automatic choice)."""
    if chunks is not None and chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    device = torch.get_default_device()
    chunk_size = None if chunks is None else math.ceil(labels / chunks)
    head = XMCHead(
        labels, dim, precision, chunk_size=chunk_size, seed=0, device=device, backend=backend
    )
    gen = torch.Generator(device=device).manual_seed(1)
    emb = torch.randn(batch, dim, device=device, generator=gen)
    rows = torch.arange(batch, device=device).repeat_interleave(POSITIVES_PER_ROW)
    cols = torch.randint(0, labels, (batch * POSITIVES_PER_ROW,), device=device, generator=gen)
    return HeadStep(head, emb, rows, cols, lr)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_gib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / GIB if sys.platform == "darwin" else peak * 1024 / GIB


def bench_head(
    labels: int,
    dim: int,
    batch: int,
    precision: str,
    chunks: int | None = None,
    steps: int = 10,
    warmup: int = 2,
) -> dict[str, object]:
    """Median wall time of ``steps`` head steps after ``warmup`` ones, and the memory they use,
    on the default device: the keys ``elmo bench head --json`` prints."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = torch.get_default_device()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = make_head_step(labels, dim, batch, precision, chunks)
    _sync(device)
    static = torch.cuda.memory_allocated(device) if device.type == "cuda" else step.nbytes
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None
    return {
        "labels": labels,
        "dim": dim,
        "batch": batch,
        "precision": precision,
        "device": str(device),
        "ms_per_step_median": round(statistics.median(times), 3),
        "static_gib": round(static / GIB, 6),
        "peak_gib": round(_peak_rss_gib() if peak is None else peak, 6),
    }
