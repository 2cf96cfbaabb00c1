"""One training job at scale, phase by phase: the `{case: "job"}` rows of docs/benchmarks.json.

Runs `elmo_core.training.train` on a dataset directory (e.g. one written by `elmo data synth`)
with the default config for an encoder, and records what a user waits for: load, setup
(until the first training step: featurizing, and the priors unless they are fitted beside the first
epoch, `priors_s` either way), the epochs' training throughput, the evaluations, the total until the
model is written, peak host RSS and GPU memory, and the GPU utilisation during the epochs
(sampled with nvidia-smi every 250 ms when it exists).

    python3 bench/scale_job.py --data /tmp/amazon-670k --shape amazon-670k --encoder minilm \\
        --precision fp8 --epochs 1 --json out.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from rows import emit

from elmo_core.data import load_dataset
from elmo_core.training import TrainerCallbacks, parse_config, train
from elmo_core.training.recipe import Recipe


class GpuSampler:
    """Samples GPU utilisation and memory with `nvidia-smi -lms` in the background."""

    def __init__(self, every_ms: int = 250) -> None:
        self.samples: list[tuple[float, float, float]] = []
        self.process: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi") is None:
            return
        self.process = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                f"-lms={every_ms}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and all(p.replace(".", "").isdigit() for p in parts):
                self.samples.append((time.time(), float(parts[0]), float(parts[1])))

    def mean_utilisation(self, start: float, end: float) -> float | None:
        """Mean GPU utilisation (%) of the samples in [start, end]."""
        values = [u for t, u, _ in self.samples if start <= t <= end]
        return round(sum(values) / len(values), 1) if values else None

    def stop(self) -> None:
        """Stop sampling."""
        if self.process is not None:
            self.process.terminate()


class StepProfile:
    """`torch.profiler` over training steps [first, last): writes the ops' host (self CPU) and
    device times as tables, and the gzipped Chrome trace, under `out`."""

    def __init__(self, steps: str, out: Path) -> None:
        first, last = (int(s) for s in steps.split(":"))
        self.first, self.last, self.out = first, last, out
        self.profiler: torch.profiler.profile | None = None
        self.started = 0.0

    def at_step(self, step: int) -> None:
        """Call after each step (`step` = steps done)."""
        if step == self.first:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.start()
            self.started = time.perf_counter()
        elif step == self.last and self.profiler is not None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            wall = time.perf_counter() - self.started
            self.profiler.stop()
            averages = self.profiler.key_averages()
            self.out.mkdir(parents=True, exist_ok=True)
            steps = self.last - self.first
            header = f"steps {self.first}-{self.last}: {1000 * wall / steps:.2f} ms a step (wall)\n"
            for key in ("self_cpu_time_total", "self_device_time_total"):
                table = averages.table(sort_by=key, row_limit=45, max_name_column_width=70)
                (self.out / f"profile-{key}.txt").write_text(header + table)
            trace = self.out / "profile-trace.json"
            self.profiler.export_chrome_trace(str(trace))
            with trace.open("rb") as src, gzip.open(f"{trace}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            trace.unlink()
            print(f"  profiled steps {self.first}-{self.last} into {self.out}", flush=True)
            self.profiler = None


class Clock(TrainerCallbacks):
    """Wall-clock marks of the run's phases, the phase records, the epoch throughput."""

    def __init__(self, profile: StepProfile | None = None) -> None:
        self.marks: list[tuple[str, float]] = []
        self.records: list[dict] = []
        self.throughput = 0.0
        self.train_window: list[float] = []
        self.profile = profile

    def on_phase(self, phase: str) -> None:
        now = time.time()
        self.marks.append((phase, now))
        if phase == "training" and not self.train_window:
            self.train_window = [now, now]
        print(f"[{time.strftime('%H:%M:%S')}] phase {phase}", flush=True)

    def on_progress(self, p: Any) -> None:
        self.throughput = p.throughput
        if self.train_window:
            self.train_window[1] = time.time()
        if self.profile is not None:
            self.profile.at_step(p.step)
        if p.step_in_epoch == p.steps_per_epoch or p.step % 500 == 0:
            loss = "" if p.loss is None else f" loss {p.loss:.2f}"
            print(f"  step {p.step}/{p.total_steps} {p.throughput:.0f} pts/s{loss}", flush=True)

    def on_telemetry(self, record: dict) -> None:
        self.records.append(record)

    def on_log(self, message: str) -> None:
        print(f"  {message}", flush=True)

    def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        print(f"  epoch {epoch}: P@1 {metrics.get('P@1', 0):.2f}", flush=True)


def phase_seconds(records: list[dict], prefix: str) -> float:
    """Total seconds of the phase records whose name starts with `prefix`."""
    return round(sum(r["seconds"] for r in records if r.get("phase", "").startswith(prefix)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--shape", default="custom", help="Name of the shape, for the record.")
    parser.add_argument("--encoder", default="tfidf")
    parser.add_argument("--precision", default="fp8")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="dotted.key=JSON override")
    parser.add_argument("--out", type=Path, default=Path("/tmp/elmo-scale-job"))
    parser.add_argument("--json", type=Path, default=None, help="Append the row to this file.")
    parser.add_argument(
        "--setup-only", action="store_true", help="Stop after setup; print its phase records."
    )
    parser.add_argument(
        "--profile-steps",
        default=None,
        help="FIRST:LAST: profile these training steps (torch.profiler) into --profile-out.",
    )
    parser.add_argument("--profile-out", type=Path, default=Path("/tmp/elmo-step-profile"))
    args = parser.parse_args()

    raw: dict = {"encoder": {"name": args.encoder}, "precision": args.precision}
    raw["epochs"] = args.epochs
    for item in args.set:
        key, value = item.split("=", 1)
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value)
    config = parse_config(raw, source="bench")
    sampler = GpuSampler()
    profile = (
        None if args.profile_steps is None else StepProfile(args.profile_steps, args.profile_out)
    )
    clock = Clock(profile)
    started = time.time()
    dataset = load_dataset(args.data)
    load_s = time.time() - started
    print(f"loaded {args.data} in {load_s:.1f} s", flush=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if args.out.exists():
        shutil.rmtree(args.out)
    if args.setup_only:
        recipe = Recipe(config, dataset, args.out, clock)
        recipe.setup(resume=False)
        recipe.wait_for_priors()
        recipe.close()
        setup = {"case": "setup", "shape": args.shape, "encoder": args.encoder, "load_s": load_s}
        setup["train_points"] = dataset.train.num_points
        setup["phases"] = [r for r in clock.records if r["kind"] == "phase"]
        setup["setup_s"] = round(time.time() - started - load_s, 2)
        print(json.dumps(setup), flush=True)
        return
    result = train(config, dataset, args.out, clock)
    total_s = time.time() - started
    sampler.stop()
    epochs = [r for r in clock.records if r["kind"] == "epoch"]
    train_start, train_end = clock.train_window or [started, started]
    setup_s = train_start - started - load_s  # to the first step: priors fitted beside excluded
    row = {
        "case": "job",
        "shape": args.shape,
        "encoder": args.encoder,
        "precision": args.precision,
        "epochs": args.epochs,
        "train_points": dataset.train.num_points,
        "test_points": None if dataset.test is None else dataset.test.num_points,
        "labels": dataset.num_labels,
        "load_s": round(load_s, 2),
        "setup_s": round(setup_s, 2),
        "featurize_s": phase_seconds(clock.records, "featurizing"),
        "priors_s": phase_seconds(clock.records, "priors"),
        "epoch_s": round(sum(r["seconds"] for r in epochs) / max(1, len(epochs)), 2),
        "points_per_s": round(clock.throughput, 1),
        "eval_s": phase_seconds(clock.records, "evaluating"),
        "test_eval_s": phase_seconds(clock.records, "evaluating test"),
        "save_s": phase_seconds(clock.records, "saving"),
        "total_s": round(total_s, 2),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)
        if torch.cuda.is_available()
        else None,
        "host_rss_gib": round(max(r.get("cpu_peak_rss", 0) for r in clock.records) / 2**30, 2),
        "gpu_util_pct": sampler.mean_utilisation(train_start, train_end),
        "test_metrics": result.metrics,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "date": date.today().isoformat(),
        "command": "python3 bench/scale_job.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, [])
        ),
        "phases": [
            {k: r[k] for k in ("phase", "seconds", "host_rss") if k in r}
            for r in clock.records
            if r["kind"] == "phase"
        ],
    }
    emit(row, args.json)


if __name__ == "__main__":
    main()
