"""Latency of POST /v1/models/{id}/predict against a running service (e.g. `elmo serve`).

    python examples/bench_predict.py --key KEY [--url http://127.0.0.1:8000] [--model MODEL]
        [--requests 1000] [--concurrency 16] [--texts-per-request 1] [--k 5]

Without --model it first trains one through the API on examples/debian-deps-mini (2 epochs,
dim 64, CPU). Texts are the debian-deps-mini test texts, cycled. Prints JSON: errors, p50/p90/p99
latency in ms and requests per second.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

MINI = Path(__file__).resolve().parent / "debian-deps-mini"


def train_model(client: httpx.Client) -> str:
    """Upload debian-deps-mini and train a small model; return its id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(MINI, arcname=MINI.name)
    files = {"file": ("debian-deps-mini.tar.gz", buffer.getvalue())}
    dataset = client.post("/v1/datasets", files=files).raise_for_status().json()
    config = {"epochs": 2, "device": "cpu", "encoder": {"dim": 64}}
    job = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": config}).json()
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(1)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    if job["state"] != "succeeded":
        raise SystemExit(f"training failed: {job['failure_reason']}")
    return job["model_id"]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    """Run the benchmark and print the summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True)
    parser.add_argument("--model")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()

    headers = {"Authorization": f"Bearer {args.key}"}
    limits = httpx.Limits(max_connections=args.concurrency)
    with httpx.Client(base_url=args.url, headers=headers, timeout=120, limits=limits) as client:
        model = args.model or train_model(client)
        texts = (MINI / "tst_X.txt").read_text().splitlines()
        path = f"/v1/models/{model}/predict"
        client.post(path, json={"texts": texts[:1], "k": args.k}).raise_for_status()  # warm cache

        def one(i: int) -> tuple[float, int]:
            start = i * args.texts_per_request % len(texts)
            batch = texts[start : start + args.texts_per_request] or texts[:1]
            t0 = time.perf_counter()
            response = client.post(path, json={"texts": batch, "k": args.k})
            return (time.perf_counter() - t0) * 1000, response.status_code

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
    latencies = [ms for ms, _ in results]
    summary = {
        "model": model,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "texts_per_request": args.texts_per_request,
        "k": args.k,
        "errors": sum(status != 200 for _, status in results),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "requests_per_s": round(args.requests / wall, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
