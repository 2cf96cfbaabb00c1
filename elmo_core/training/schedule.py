"""Learning-rate schedules: linear warm-up, then cosine, linear or constant decay."""

from __future__ import annotations

import math


def lr_factor(
    step: int, total_steps: int, warmup_fraction: float, decay: str, min_ratio: float = 0.0
) -> float:
    """Multiplier of the base learning rate at 0-based `step` of `total_steps`.

    Warm-up rises linearly from 1/warmup to 1 over the first `ceil(warmup_fraction * total)` steps;
    the decay then goes from 1 to `min_ratio` at the last step ("cosine", "linear") or stays at 1
    ("constant").
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup = math.ceil(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if decay == "constant":
        return 1.0
    span = max(1, total_steps - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    if decay == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif decay == "linear":
        shape = 1.0 - progress
    else:
        raise ValueError(f"decay must be cosine, linear or constant, got {decay!r}")
    return min_ratio + (1.0 - min_ratio) * shape
