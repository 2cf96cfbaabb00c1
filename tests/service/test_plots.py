"""telemetry.png: GPU and host memory in separate panels, GiB, integer epochs, only real series."""

from __future__ import annotations

import io

from matplotlib.image import imread

from service.core.plots import telemetry_figure, telemetry_png

GIB = 1024**3


def cuda_records() -> list[dict]:
    """A CUDA job's static record and three epochs; the second epoch lacks host RSS fields."""
    records: list[dict] = [
        {"kind": "static", "device": "cuda:0", "head_weights": 2 * GIB, "kahan_buffers": 0},
    ]
    for epoch in (1, 2, 3):
        record: dict = {
            "kind": "epoch",
            "epoch": epoch,
            "phases": {
                "head_step": {"peak_allocated": 5 * GIB, "seconds": 1.0},
                "encoder_forward": {"peak_allocated": GIB // 2, "host_rss_bytes": 3 * GIB},
                "optimizer_step": {"seconds": 0.1},  # no memory: no series
            },
        }
        if epoch != 2:
            record["cpu_peak_rss"] = 4 * GIB
        records.append(record)
    records.append({"kind": "phase", "phase": "saving model", "host_rss": GIB})
    return records


def legend(ax) -> list[str]:
    """The legend labels of an axes."""
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_cuda_job_has_a_gpu_and_a_host_panel_in_gib() -> None:
    fig = telemetry_figure("job_x", cuda_records())
    gpu, host = fig.axes
    assert gpu.get_title().startswith("GPU") and host.get_title() == "host memory"
    assert gpu.get_ylabel() == host.get_ylabel() == "GiB"
    assert legend(gpu) == ["head step", "encoder forward", "head weights (static)"]
    assert legend(host) == ["encoder forward (RSS)", "process peak RSS"]
    head_step = gpu.get_lines()[0]
    assert list(head_step.get_xdata()) == [1, 2, 3] and list(head_step.get_ydata()) == [5.0] * 3
    peak_rss = host.get_lines()[1]
    assert list(peak_rss.get_xdata()) == [1, 3]  # epoch 2 had no value: no point, no zero
    for ax in (gpu, host):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1, 2, 3]


def test_a_cpu_job_has_only_the_host_panel_with_its_static_sizes() -> None:
    records = [
        {"kind": "static", "device": "cpu", "encoder": GIB // 4, "optimizer_states": GIB // 2},
        {"kind": "epoch", "epoch": 1, "phases": {"head_step": {"seconds": 2.0}}},
    ]
    records[1] |= {"cpu_peak_rss": GIB, "host_rss": GIB // 2}
    (host,) = telemetry_figure("job_cpu", records).axes
    assert legend(host) == [
        "process peak RSS",
        "RSS at epoch end",
        "encoder (static)",
        "optimizer states (static)",
    ]
    ticks = [t for t in host.get_xticks() if host.get_xlim()[0] <= t <= host.get_xlim()[1]]
    assert ticks == [1]  # one epoch: one integer tick, no 0.9, 1.1


def test_the_png_is_a_readable_image_even_without_telemetry() -> None:
    for records in ([], cuda_records(), [{"kind": "epoch", "phases": "garbled", "epoch": True}]):
        png = telemetry_png("job_y", records)
        image = imread(io.BytesIO(png), format="png")
        assert image.shape[1] == 1000 and image.shape[0] >= 300
