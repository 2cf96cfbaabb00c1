"""telemetry.png: a job's memory per phase over its epochs (matplotlib `Figure`, no pyplot).

One panel per kind of memory that the records hold: GPU (each step phase's peak allocated bytes,
CUDA only) and host (the process's peak RSS, its RSS at the end of each epoch, and any per-phase
host RSS a record carries). Static sizes (head weights, Kahan buffers, encoder, optimizer states)
are dashed lines in the panel of the device that holds them. A series with no value is left out,
so a CPU job shows one panel; missing keys (older or newer record formats) are skipped.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

GIB = 1024.0**3

STATIC_PARTS = {
    "head_weights": "head weights",
    "kahan_buffers": "Kahan buffers",
    "encoder": "encoder",
    "optimizer_states": "optimizer states",
}
STATIC_STYLES = ("--", ":", "-.", (0, (6, 2, 1, 2)))
HOST_EPOCH_KEYS = {"cpu_peak_rss": "process peak RSS", "host_rss": "RSS at epoch end"}
HOST_PHASE_KEYS = ("host_rss_bytes", "host_rss", "peak_rss_bytes")
"""Per-phase host RSS fields, in the order preferred when a phase has more than one."""

Series = dict[str, dict[int, float]]
"""Series name -> {epoch: GiB}."""


def _number(value: Any) -> float | None:
    """`value` as a float if it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _epoch_series(epochs: list[dict[str, Any]]) -> tuple[Series, Series]:
    """GPU and host series of the epoch records, in GiB, only the values present."""
    gpu: Series = {}
    host: Series = {}
    for position, record in enumerate(epochs, start=1):
        epoch = record.get("epoch")
        x = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else position
        phases = record.get("phases")
        for name, part in (phases if isinstance(phases, Mapping) else {}).items():
            if not isinstance(part, Mapping):
                continue
            label = str(name).replace("_", " ")
            allocated = _number(part.get("peak_allocated"))
            if allocated is not None:
                gpu.setdefault(label, {})[x] = allocated / GIB
            rss = next(
                (v for v in (_number(part.get(k)) for k in HOST_PHASE_KEYS) if v is not None),
                None,
            )
            if rss is not None:
                host.setdefault(f"{label} (RSS)", {})[x] = rss / GIB
        for key, label in HOST_EPOCH_KEYS.items():
            value = _number(record.get(key))
            if value is not None:
                host.setdefault(label, {})[x] = value / GIB
    return gpu, host


def _static_lines(static: Mapping[str, Any] | None) -> dict[str, float]:
    """The static sizes that are above zero, in GiB, by display name."""
    if static is None:
        return {}
    lines = {}
    for key, label in STATIC_PARTS.items():
        value = _number(static.get(key))
        if value is not None and value > 0:
            lines[label] = value / GIB
    return lines


def _draw_panel(ax: Axes, title: str, series: Series, static: dict[str, float]) -> None:
    """One panel: a line per series over integer epochs, a dashed line per static size, the
    legend to the right of the plot (it never hides a line)."""
    for name, points in series.items():
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
    palette = colormaps["Dark2"].colors  # type: ignore[attr-defined]
    for i, (name, gib) in enumerate(static.items()):
        ax.axhline(
            gib,
            linestyle=STATIC_STYLES[i % len(STATIC_STYLES)],
            linewidth=1.2,
            color=palette[i % len(palette)],
            label=f"{name} (static)",
        )
    highest = max([*static.values(), *(v for pts in series.values() for v in pts.values())])
    ax.set_ylim(0, highest * 1.15 if highest > 0 else 1.0)
    epochs = [x for pts in series.values() for x in pts]
    if epochs:  # half an epoch of margin: a single epoch still gets one integer tick
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("GiB")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def telemetry_figure(job_id: str, records: list[dict[str, Any]]) -> Figure:
    """The figure of the job's memory telemetry: GPU and host panels, only those with data.

    A plain `Figure` (no pyplot state), so API threads can draw at the same time.
    """
    epochs = [r for r in records if r.get("kind") == "epoch"]
    static = next((r for r in records if r.get("kind") == "static"), None)
    gpu, host = _epoch_series(epochs)
    static_sizes = _static_lines(static)
    on_gpu = str((static or {}).get("device", "")).startswith("cuda")
    panels = [
        (title, series, lines)
        for title, series, lines in (
            ("GPU: peak allocated per step phase", gpu, static_sizes if on_gpu else {}),
            ("host memory", host, {} if on_gpu else static_sizes),
        )
        if series or lines
    ]
    rows = max(1, len(panels))
    fig = Figure(figsize=(10, 3.2 * rows + 0.6), dpi=100)
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    fig.suptitle(f"memory of {job_id}", fontsize=11)
    if not panels:
        axes[0].axis("off")
        axes[0].text(0.5, 0.5, "no telemetry yet", ha="center", va="center")
    for ax, (title, series, lines) in zip(axes, panels, strict=False):
        _draw_panel(ax, title, series, lines)
    fig.tight_layout()
    return fig


def telemetry_png(job_id: str, records: list[dict[str, Any]]) -> bytes:
    """`telemetry_figure` as PNG bytes."""
    buf = io.BytesIO()
    telemetry_figure(job_id, records).savefig(buf, format="png")
    return buf.getvalue()
