"""Run several `elmo train` configurations side by side on one machine and tabulate them.

Each variant is a name plus a partial `TrainConfig` (JSON) merged over `--base`; all runs start
together as separate processes (on one GPU they share it, so wall times are shared too). The table
gives each run's per-epoch history of the evaluated split and its best epoch.

    python bench/train_sweep.py --data DIR --out RUNS --variants variants.json \
        [--base '{"data": {"validation_fraction": 0.1}, "eval": {"split": "validation"}}'] \
        [--precision fp8] [--device cuda] [--json RESULTS.json]

`variants.json`: `{"name": {partial config}, ...}`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def deep_merge(base: dict, override: dict) -> dict:
    """`override` merged into a copy of `base`, recursing into nested dicts."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def main() -> None:
    """Start every variant, wait for all, print one line per run and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variants", required=True, type=Path)
    parser.add_argument("--base", default="{}")
    parser.add_argument("--precision", default="fp8")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--timeout", type=float, default=540.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    base = json.loads(args.base)
    variants = json.loads(args.variants.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    procs = {}
    started = time.perf_counter()
    for name, partial in variants.items():
        run_dir = args.out / name
        config_path = args.out / f"{name}.json"
        config_path.write_text(json.dumps(deep_merge(base, partial)))
        command = [
            sys.executable, "-m", "elmo_core.cli.main", "train", "--data", args.data,
            "--precision", args.precision, "--device", args.device,
            "--config", str(config_path), "--out", str(run_dir),
        ]  # fmt: skip
        log = (args.out / f"{name}.log").open("w")
        procs[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
    deadline = started + args.timeout
    for proc, log in procs.values():
        try:
            proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    results = {}
    for name in variants:
        metrics_path = args.out / name / "metrics.json"
        if not metrics_path.exists():
            results[name] = {"error": (args.out / f"{name}.log").read_text()[-2000:]}
            print(f"{name}: no metrics (see {name}.log)")
            continue
        summary = json.loads(metrics_path.read_text())
        history = summary.get("history", [])
        p1 = [round(h.get("P@1", float("nan")), 2) for h in history]
        best = max(history, key=lambda h: h.get("P@1", -1.0)) if history else {}
        results[name] = {"history": history, "best": best}
        print(
            f"{name:28s} best ep {best.get('epoch')} P@1 {best.get('P@1', 0):.2f} "
            f"P@5 {best.get('P@5', 0):.2f} PSP@5 {best.get('PSP@5', 0):.2f} | P@1/epoch {p1}"
        )
    print(f"wall {time.perf_counter() - started:.0f} s for {len(variants)} runs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
