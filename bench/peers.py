"""Peer bench: Omikuji-Bonsai and napkinXC-PLT next to elmo's recipes, on any dataset elmo reads.

    python bench/peers.py DATA [--methods bonsai,plt,elmo-cpu,elmo-gpu] [--threads N]
        [--json OUT.jsonl] [--workdir DIR] [--elmo-args="--epochs 5 ..."]

DATA is anything `elmo_core.data.load_dataset` reads (LF raw, BoW, JSONL) with a test split.
(`--elmo-args` takes one string; write it with `=` since it starts with `--`.)

- Features of the peers: elmo's own `TfidfFeaturizer` with the `tfidf` encoder's default settings
  (`TfidfConfig()`), fitted on the train texts only, then applied to train and test; a dataset
  without texts uses its own sparse features. Its time is reported once, as `featurize`.
- `bonsai`: Omikuji with the Bonsai settings of Omikuji's README (unbalanced k-means,
  `cluster.k` 100, `max_depth` 3; everything else Omikuji's defaults: 3 trees, `linear.c` 1),
  trained on an Extreme Classification Repository format file written from those features.
- `plt`: napkinXC's `PLT` with its defaults (hierarchical 2-means tree, liblinear logistic loss).
- `elmo-cpu` / `elmo-gpu`: `elmo train --data DATA --encoder tfidf --precision fp8 --device cpu|cuda
  --out DIR` in a subprocess (elmo's default config: 5% of train held out to pick the epoch);
  its test metrics are read from `DIR/metrics.json`; prediction time is `elmo eval` of the saved
  model (a whole command: loading the model and the dataset included). `elmo-gpu` is skipped where
  `torch.cuda.is_available()` is false. Its wall time includes its own TF-IDF fit.

Every method's ranking is scored by the same function elmo uses (`elmo_core.model.evaluation`:
P@k, PSP@k with the Jain propensities of `EvalConfig`'s defaults computed on the train points of
an elmo run with the default config, filter pairs removed before the top k). Peers train on the
whole train split; train rows without a label are dropped for them. Each peer trains and predicts
in a forked child, so its peak RSS is that process's (which includes the dataset and features the
parent had loaded: `baseline RSS` in the output). One JSON row per method is appended to --json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from elmo_core.config import EvalConfig, TfidfConfig, TrainConfig
from elmo_core.data import XMCDataset, XMCSplit, load_dataset
from elmo_core.data.splits import select_splits
from elmo_core.encoders import tfidf_featurizer
from elmo_core.metrics import jain_propensities
from elmo_core.model.evaluation import ranking_depth, score_ids, split_truth

METHODS = ("bonsai", "plt", "elmo-cpu", "elmo-gpu")
SHOWN = ("P@1", "P@3", "P@5", "PSP@5")
BONSAI = {"cluster_balanced": False, "cluster_k": 100, "max_depth": 3}


# --- features and files -------------------------------------------------------------------------


def featurize(
    dataset: XMCDataset, workers: int | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test) float32 CSR features: elmo's TF-IDF (default `TfidfConfig`, fitted on train
    texts) where the dataset has texts, else its own sparse features."""
    test = _require_test(dataset)
    if dataset.train.texts is not None and test.texts is not None:
        featurizer = tfidf_featurizer(TfidfConfig()).fit(dataset.train.texts, workers=workers)
        return (
            featurizer.transform(dataset.train.texts, workers=workers),
            featurizer.transform(test.texts, workers=workers),
        )
    if dataset.train.features is None or test.features is None:
        raise SystemExit(f"{dataset.name}: neither texts nor sparse features in both splits")
    return sp.csr_matrix(dataset.train.features), sp.csr_matrix(test.features)


def label_lists(labels: sp.csr_matrix) -> list[list[int]]:
    """Each row's label ids (sorted), as plain Python lists."""
    labels = sp.csr_matrix(labels)
    labels.sort_indices()
    return [
        labels.indices[a:b].tolist()
        for a, b in zip(labels.indptr[:-1], labels.indptr[1:], strict=True)
    ]


def labelled_rows(
    features: sp.csr_matrix, labels: sp.csr_matrix
) -> tuple[sp.csr_matrix, list[list[int]]]:
    """The rows that have at least one label: (features, label lists)."""
    keep = np.flatnonzero(np.diff(sp.csr_matrix(labels).indptr) > 0)
    return sp.csr_matrix(features)[keep], label_lists(sp.csr_matrix(labels)[keep])


def write_xmc_file(
    path: Path, features: sp.csr_matrix, labels: Sequence[Sequence[int]], num_labels: int
) -> None:
    """Write the Extreme Classification Repository format Omikuji reads: a header `N F L`, then
    per row `l1,l2,... f:v f:v ...` (0-based ids, features in increasing order, 6 significant
    digits). Every row must have a label (the format has no way to say "none" that all readers
    accept)."""
    x = sp.csr_matrix(features)
    x.sort_indices()
    if x.shape[0] != len(labels):
        raise ValueError(f"{x.shape[0]} feature rows but {len(labels)} label rows")
    with open(path, "w", encoding="ascii") as handle:
        handle.write(f"{x.shape[0]} {x.shape[1]} {num_labels}\n")
        for row, row_labels in enumerate(labels):
            if not row_labels:
                raise ValueError(f"row {row} has no label")
            start, stop = x.indptr[row], x.indptr[row + 1]
            pairs = " ".join(
                f"{c}:{v:.6g}"
                for c, v in zip(
                    x.indices[start:stop].tolist(), x.data[start:stop].tolist(), strict=True
                )
            )
            handle.write(",".join(map(str, row_labels)) + (" " + pairs if pairs else "") + "\n")


def as_topk(predictions: Sequence[Sequence[int]], depth: int) -> np.ndarray:
    """N x depth int64 ids from per-row ranked lists (best first), padded with -1."""
    ids = np.full((len(predictions), depth), -1, dtype=np.int64)
    for row, ranked in enumerate(predictions):
        ranked = list(ranked)[:depth]
        ids[row, : len(ranked)] = ranked
    return ids


def elmo_propensities(dataset: XMCDataset) -> np.ndarray:
    """The propensities elmo's default run uses for PSP@k (train points of `select_splits`)."""
    config = TrainConfig()
    splits = select_splits(config, dataset)
    return jain_propensities(
        splits.train.labels, config.eval.propensity_a, config.eval.propensity_b
    )


def score(ids: np.ndarray, test: XMCSplit, propensities: np.ndarray) -> dict[str, float]:
    """P/nDCG/PSP/R@k of `ids` on `test`, by elmo's own evaluation (EvalConfig defaults)."""
    config = EvalConfig()
    return score_ids(ids, split_truth(test, config, propensities), config)


# --- the peers ----------------------------------------------------------------------------------


def run_bonsai(
    x_train: sp.csr_matrix,
    y_train: list[list[int]],
    x_test: sp.csr_matrix,
    num_labels: int,
    depth: int,
    threads: int,
    workdir: Path,
) -> tuple[list[list[int]], float, float]:
    """Train Omikuji-Bonsai and rank the test rows: (predictions, train s, predict s). Training
    time includes writing the data file and Omikuji reading it."""
    import omikuji

    start = time.perf_counter()
    path = workdir / "bonsai_train.txt"
    write_xmc_file(path, x_train, y_train, num_labels)
    hyper = omikuji.Model.default_hyper_param()
    for key, value in BONSAI.items():
        setattr(hyper, key, value)
    model = omikuji.Model.train_on_data(str(path), hyper, n_threads=threads)
    train_s = time.perf_counter() - start
    path.unlink()
    start = time.perf_counter()
    model.init_prediction_thread_pool(threads)
    x = sp.csr_matrix(x_test)
    x.sort_indices()
    predictions = []
    for row in range(x.shape[0]):
        a, b = x.indptr[row], x.indptr[row + 1]
        pairs = list(zip(x.indices[a:b].tolist(), x.data[a:b].tolist(), strict=True))
        predictions.append([label for label, _ in model.predict(pairs, top_k=depth)])
    return predictions, train_s, time.perf_counter() - start


def run_plt(
    x_train: sp.csr_matrix,
    y_train: list[list[int]],
    x_test: sp.csr_matrix,
    num_labels: int,
    depth: int,
    threads: int,
    workdir: Path,
) -> tuple[list[list[int]], float, float]:
    """Train napkinXC's PLT (defaults) and rank the test rows: (predictions, train s, predict s)."""
    from napkinxc.models import PLT

    start = time.perf_counter()
    model = PLT(str(workdir / "plt"), threads=threads, seed=0)
    model.fit(x_train, y_train)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    predictions = model.predict(x_test, top_k=depth)
    predict_s = time.perf_counter() - start
    return [[int(label) for label in row] for row in predictions], train_s, predict_s


PEERS: dict[str, Callable[..., tuple[list[list[int]], float, float]]] = {
    "bonsai": run_bonsai,
    "plt": run_plt,
}


def in_child(job: Callable[[], Any], log: Path | None = None) -> tuple[Any, float]:
    """Run `job` in a forked child: (its return value, the child's peak RSS in MiB). The child's
    stdout and stderr (Omikuji's progress bars) go to `log` when given. An exception in the child
    is re-raised here as RuntimeError with its text."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        if log is not None:
            log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
        try:
            payload = ("ok", job())
        except BaseException as exc:  # sent to the parent
            payload = ("error", f"{type(exc).__name__}: {exc}")
        with os.fdopen(write_fd, "wb") as pipe:
            pickle.dump(payload, pipe)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, _, usage = os.wait4(pid, 0)
    if not data:
        raise RuntimeError("the child process died without a result")
    status, value = pickle.loads(data)
    if status != "ok":
        raise RuntimeError(value)
    return value, usage.ru_maxrss / 1024


# --- elmo ---------------------------------------------------------------------------------------


def timed_command(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Run `command` (stdout+stderr to `log`): (wall s, peak RSS MiB of it and its children, rc)."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def elmo_time_breakdown(telemetry: Path) -> dict[str, Any]:
    """Where an elmo run's time went, from its `telemetry.json`: the epochs' total seconds and,
    per phase of the timed steps (encoder forward, head step, ...), the mean seconds per step."""
    try:
        data = json.loads(telemetry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    epochs = data.get("epochs") or []
    totals: dict[str, list[float]] = {}
    for epoch in epochs:
        for phase, timing in (epoch.get("phases") or {}).items():
            if timing.get("timed_steps"):
                entry = totals.setdefault(phase, [0.0, 0.0])
                entry[0] += float(timing["seconds"])
                entry[1] += float(timing["timed_steps"])
    return {
        "epochs": len(epochs),
        "epochs_s": sum(float(epoch.get("seconds", 0.0)) for epoch in epochs),
        "steps": int(epochs[-1].get("step", 0)) if epochs else 0,
        "step_phase_mean_s": {phase: sec / n for phase, (sec, n) in totals.items()},
    }


def run_elmo(
    data: Path, device: str, threads: int | None, extra: list[str], workdir: Path
) -> dict[str, Any]:
    """`elmo train` then `elmo eval` of the saved model, in subprocesses; the row's fields."""
    out = workdir / f"elmo-{device}"
    if out.exists():
        shutil.rmtree(out)
    # The `elmo` script where installed; else the module (a checkout on PYTHONPATH).
    elmo = (
        [shutil.which("elmo") or ""]
        if shutil.which("elmo")
        else [sys.executable, "-m", "elmo_core.cli.main"]
    )
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    train_cmd = [*elmo, "train", "--data", str(data), "--encoder", "tfidf", "--precision", "fp8"]
    train_cmd += ["--device", device, "--out", str(out), *extra]
    train_s, train_rss, rc = timed_command(train_cmd, env, workdir / f"elmo-{device}-train.log")
    if rc != 0:
        tail = (workdir / f"elmo-{device}-train.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"elmo train exited {rc}:\n{tail}")
    summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    eval_cmd = [*elmo, "eval", "--model", str(out / "model"), "--data", str(data), "--json"]
    predict_s, eval_rss, rc = timed_command(eval_cmd, env, workdir / f"elmo-{device}-eval.log")
    if rc != 0:
        predict_s = float("nan")
    return {
        "train_s": train_s,
        "time_breakdown": elmo_time_breakdown(out / "telemetry.json"),
        "predict_s": predict_s,
        "predict_note": "whole `elmo eval` command (model + dataset load, fusion priors)",
        "metrics": summary.get("metrics") or {},
        "metrics_split": summary.get("split"),
        "epoch": summary.get("epoch"),
        "selected_on": summary.get("selected_on"),
        "peak_rss_mib": max(train_rss, eval_rss),
        "settings": {"train": shlex.join(train_cmd), "eval": shlex.join(eval_cmd)},
    }


# --- the bench ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """nproc, CPU model, and the GPU where torch sees one."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"nproc": os.cpu_count(), "cpu": cpu, "host": platform.node()}
    if _cuda():
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _require_test(dataset: XMCDataset) -> XMCSplit:
    if dataset.test is None:
        raise SystemExit(f"{dataset.name}: no test split to evaluate on")
    return dataset.test


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per method: times, metrics, peak RSS."""
    head = f"{'method':<10} {'train s':>9} {'predict s':>10} " + " ".join(f"{k:>6}" for k in SHOWN)
    print(head + f" {'peak RSS MiB':>13}")
    for row in rows:
        if "error" in row:
            print(f"{row['method']:<10} error: {row['error'].splitlines()[0]}")
            continue
        metrics = " ".join(f"{row['metrics'].get(k, float('nan')):6.2f}" for k in SHOWN)
        print(
            f"{row['method']:<10} {row['train_s']:9.1f} {row['predict_s']:10.1f} {metrics}"
            f" {row.get('peak_rss_mib', float('nan')):13.0f}"
        )
        if f"head {SHOWN[0]}" in row["metrics"]:  # elmo: its head's ranking without the fusion
            head = " ".join(f"{row['metrics'].get(f'head {k}', float('nan')):6.2f}" for k in SHOWN)
            print(f"{'  head':<10} {'':9} {'':10} {head}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the methods in order, print the table, append the JSON rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset (anything `elmo data inspect` reads)")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated: " + ",".join(METHODS)
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per method (default: all cores)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="append one JSON row per method here"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep models and logs here")
    parser.add_argument("--elmo-args", default="", help="extra `elmo train` options, one string")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    threads = args.threads or os.cpu_count() or 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="elmo-peers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    common = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "dataset": str(args.data),
        "threads": threads,
    }

    start = time.perf_counter()
    dataset = load_dataset(args.data, empty_rows="keep")
    test = _require_test(dataset)
    load_s = time.perf_counter() - start
    propensities = elmo_propensities(dataset)
    depth = ranking_depth(EvalConfig().ks, test)
    peers = [m for m in methods if m in PEERS]
    feature_info: dict[str, Any] = {"load_s": load_s}
    if peers:
        start = time.perf_counter()
        x_train, x_test = featurize(dataset, workers=threads)
        feature_info |= {
            "featurize_s": time.perf_counter() - start,
            "num_features": int(x_train.shape[1]),
            "baseline_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        x_fit, y_fit = labelled_rows(x_train, dataset.train.labels)
        print(
            f"{dataset.name}: {dataset.train.num_points} train / {test.num_points} test points,"
            f" {dataset.num_labels} labels, {x_train.shape[1]} TF-IDF features"
            f" (load {load_s:.1f} s, featurize {feature_info['featurize_s']:.1f} s,"
            f" baseline RSS {feature_info['baseline_rss_mib']:.0f} MiB)",
            flush=True,
        )

    rows: list[dict[str, Any]] = []
    for method in methods:
        row: dict[str, Any] = {**common, "method": method}
        print(f"-- {method} ...", flush=True)
        try:
            if method in PEERS:
                runner = PEERS[method]

                def job(runner: Callable[..., Any] = runner) -> Any:
                    return runner(x_fit, y_fit, x_test, dataset.num_labels, depth, threads, workdir)

                (predictions, train_s, predict_s), rss = in_child(job, workdir / f"{method}.log")
                row |= {
                    "train_s": train_s,
                    "predict_s": predict_s,
                    "metrics": score(as_topk(predictions, depth), test, propensities),
                    "metrics_split": "test",
                    "peak_rss_mib": rss,
                    "features": feature_info,
                    "settings": BONSAI if method == "bonsai" else {"napkinxc.PLT": "defaults"},
                }
            else:
                device = method.removeprefix("elmo-").replace("gpu", "cuda")
                if device == "cuda" and not _cuda():
                    print("   skipped: torch.cuda.is_available() is false", flush=True)
                    continue
                row |= run_elmo(
                    args.data, device, args.threads, shlex.split(args.elmo_args), workdir
                )
        except Exception as exc:  # one failing method does not stop the others
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            with open(args.json, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
    print(f"\nmodels and logs: {workdir}")
    print_table(rows)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
