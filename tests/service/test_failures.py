"""Failure reasons of jobs: plain errors and GPU out-of-memory with the planner's estimate."""

from __future__ import annotations

import torch

from worker.failures import describe_failure


def test_plain_error() -> None:
    assert describe_failure(ValueError("bad value"), None) == "ValueError: bad value"


def test_cuda_oom_names_the_estimate_and_a_fix() -> None:
    exc = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")
    reason = describe_failure(exc, {"total_gib": 12.5})
    assert reason.startswith("GPU out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)")
    assert "estimated 12.5 GiB" in reason and "batch_size" in reason and "fp8" in reason
    assert "no memory estimate" in describe_failure(exc, None)
