"""Turn the exception that ended a job into its `failure_reason` (one readable line)."""

from __future__ import annotations

from typing import Any

from service.errors import is_disk_full

DISK_FULL = (
    "disk full: no space left on device while the job wrote its files (checkpoint, model or "
    "results); nothing half-written was kept. Free space in the artifacts directory, then "
    "submit the job again"
)


def describe_failure(exc: BaseException, memory_plan: dict[str, Any] | None) -> str:
    """`Type: message`; a GPU out-of-memory error also gets the planner's estimate and a fix; a
    full disk (ENOSPC, EDQUOT) says so, without the server path of the file being written."""
    if is_disk_full(exc):
        return DISK_FULL
    reason = f"{type(exc).__name__}: {exc}".strip()
    if type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc):
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        estimate = (
            f"the planner estimated {memory_plan['total_gib']} GiB"
            if memory_plan and "total_gib" in memory_plan
            else "no memory estimate was recorded"
        )
        reason = (
            f"GPU out of memory ({first_line}); {estimate}. Lower batch_size, encoder.dim or "
            "head.chunk_size, use precision fp8, or run on a GPU with more memory "
            "(POST /v1/plan shows the parts)"
        )
    return reason
