"""Memory planning for the API: `plan_memory` plus the worker's GPU size from the settings."""

from __future__ import annotations

from typing import Any

from elmo_core.config import TrainConfig
from service.core.config import GIB, Settings


def plan_for(
    config: TrainConfig,
    num_labels: int,
    num_features: int | None,
    gpu_memory_gib: float | None,
    stats: dict[str, Any] | None = None,
    host_memory_gib: float | None = None,
) -> dict[str, Any]:
    """The plan as JSON: parts, total, the GPU checked against and whether it fits; with the
    dataset's `stats`, also the host RAM plan (`host`) checked against `host_memory_gib`, for a
    run on the CPU when no GPU is given (`gpu_memory_gib` None: a CPU job, or a worker GPU the
    settings do not state), which counts the CPU's default members.

    The planner is imported here, not at module level: it loads torch, which the API needs only
    once it plans.
    """
    from elmo_core.training import plan_memory

    plan = plan_memory(config, num_labels, num_features)
    parts = plan.to_dict()
    total = parts.pop("total_bytes")
    chunk = parts.pop("chunk_size")
    fits = None if gpu_memory_gib is None else plan.fits(int(gpu_memory_gib * GIB))
    return {
        "num_labels": num_labels,
        "num_features": num_features,
        "chunk_size": chunk,
        "parts_bytes": parts,
        "total_bytes": total,
        "total_gib": round(total / GIB, 3),
        "gpu_memory_gib": gpu_memory_gib,
        "fits": fits,
        "host": None
        if stats is None
        else _host_plan(
            config, stats, host_memory_gib, "cpu" if gpu_memory_gib is None else "cuda"
        ),
    }


def _host_plan(
    config: TrainConfig, stats: dict[str, Any], host_memory_gib: float | None, device_type: str
) -> dict[str, Any]:
    from elmo_core.training import plan_host_memory

    plan = plan_host_memory(config, stats, device_type)
    parts = plan.to_dict()
    total = parts.pop("total_bytes")
    return {
        "parts_bytes": parts,
        "total_bytes": total,
        "total_gib": round(total / GIB, 3),
        "host_memory_gib": host_memory_gib,
        "fits": None if host_memory_gib is None else plan.fits(int(host_memory_gib * GIB)),
    }


def worker_gpu_for(config: TrainConfig, settings: Settings) -> float | None:
    """The GPU memory a job of `config` must fit: the worker's, unless the job runs on the CPU."""
    if config.device == "cpu":
        return None
    return settings.worker_gpu_memory_gib
