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
) -> dict[str, Any]:
    """The plan as JSON: parts, total, the GPU checked against and whether it fits.

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
    }


def worker_gpu_for(config: TrainConfig, settings: Settings) -> float | None:
    """The GPU memory a job of `config` must fit: the worker's, unless the job runs on the CPU."""
    if config.device == "cpu":
        return None
    return settings.worker_gpu_memory_gib
