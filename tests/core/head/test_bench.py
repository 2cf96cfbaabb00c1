"""make_head_step / bench_head and `elmo bench head` on the CPU (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from typer.testing import CliRunner

from elmo_core.bench import bench_head, make_head_step
from elmo_core.cli.main import app

KEYS = ["labels", "dim", "batch", "precision", "device", "ms_per_step_median", "static_gib",
        "peak_gib"]  # fmt: skip


def test_make_head_step_trains_on_a_fixed_batch_with_five_positives_per_row():
    step = make_head_step(500, 32, 8, "fp8", chunks=3)
    assert step.head.chunk_size == 167 and step.head.device == torch.get_default_device()
    assert torch.equal(step.rows, torch.arange(8).repeat_interleave(5))
    before = step.head.dequantized()
    grad = step()
    assert grad.shape == (8, 32) and grad.dtype == torch.float32
    assert not torch.equal(step.head.dequantized(), before)
    loss0 = step.head.loss(step.embedding, step.rows, step.cols)
    for _ in range(20):
        step()
    assert step.head.loss(step.embedding, step.rows, step.cols) < loss0


def test_bench_head_reports_the_documented_keys():
    out = bench_head(300, 16, 4, "bf16", chunks=2, steps=2, warmup=1)
    assert list(out) == KEYS
    assert out["device"] == "cpu" and out["ms_per_step_median"] > 0
    assert out["static_gib"] * 1024**3 >= 0.99 * 300 * 16 * 2  # at least the bf16 weights


def test_cli_bench_head_json():
    args = ["bench", "head", "--labels", "200", "--dim", "16", "--batch", "4", "--precision",
            "fp8", "--chunks", "3", "--steps", "2", "--json", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert list(out) == KEYS and out["labels"] == 200 and out["precision"] == "fp8"
    bad = CliRunner().invoke(app, ["bench", "head", "--labels", "10", "--precision", "fp16"])
    assert bad.exit_code != 0


def test_head_and_bench_import_with_torch_only():
    # the reference backend steps with torch only; the cpu-bf16 backend's kernels need numba
    code = (
        "import sys\n"
        "for m in ('pydantic', 'typer', 'rich', 'numpy', 'scipy', 'fastapi', 'numba'):\n"
        "    sys.modules[m] = None\n"
        "import elmo_core.bench, elmo_core.head\n"
        "print(elmo_core.bench.make_head_step(64, 8, 2, 'bf16', backend='reference')().shape)\n"
        "print(elmo_core.head.XMCHead(64, 8, 'fp8', backend='cpu-bf16').backend.name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch.Size([2, 8])" in done.stdout and "cpu-bf16" in done.stdout
