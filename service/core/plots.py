"""telemetry.png: memory per phase over a job's epochs (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MIB = 1024.0**2


def telemetry_png(job_id: str, records: list[dict[str, Any]]) -> bytes:
    """A PNG: per-epoch peak memory of each step phase (CUDA) and the process peak RSS (CPU),
    with the static sizes (head weights, Kahan buffers, encoder, optimizer) as dashed lines."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    static = next((r for r in records if r.get("kind") == "static"), None)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    xs = [r.get("epoch", i + 1) for i, r in enumerate(epochs)]
    series: dict[str, list[float | None]] = {}
    for i, rec in enumerate(epochs):
        values = {
            f"{name} peak": part.get("peak_allocated")
            for name, part in (rec.get("phases") or {}).items()
        }
        values["CPU peak RSS"] = rec.get("cpu_peak_rss")
        for name, value in values.items():
            series.setdefault(name, [None] * len(epochs))[i] = (
                value / MIB if isinstance(value, int | float) else None
            )
    for name, ys in series.items():
        ax.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", label=name)
    if static:
        for key in ("head_weights", "kahan_buffers", "encoder", "optimizer_states"):
            value = static.get(key)
            if isinstance(value, int | float) and value > 0:
                ax.axhline(value / MIB, linestyle="--", linewidth=1, label=f"{key} (static)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MiB")
    ax.set_title(f"memory telemetry of {job_id}")
    if not epochs and not static:
        ax.text(0.5, 0.5, "no telemetry yet", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
