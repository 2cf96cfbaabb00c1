"""Peak RSS of a running `elmo api` under a flood of the largest predict calls it accepts.

python bench/predict_attack.py --url http://127.0.0.1:8131 --key KEY --model-id MODEL --pid PID
    [--texts 10] [--chars 100000] [--k 1000] [--concurrency 16] [--duration 30]

`--concurrency` threads post `--texts` texts of `--chars` characters each (words drawn from a
fixed list, so the featurizer does real work) with `--k` for `--duration` seconds, each thread
sending its next call as soon as the last one is answered (after a 429 too: no back-off). The
defaults are the largest calls the default limits allow: 10 x 100,000 characters =
`ELMO_MAX_PREDICT_CHARS` (1,000,000), k = `ELMO_MAX_PREDICT_K` (1,000). `--texts 256 --chars
100000` repeats the original attack (a 413 now).

The API's resident memory is read from /proc/PID/status: VmRSS before (baseline) and after, and
VmHWM, the peak, reset first through /proc/PID/clear_refs (root, or the API's own user) so that it
covers the attack only; VmRSS is also sampled every 50 ms. Prints one JSON row.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

WORDS = [
    *("python", "library", "http", "requests", "kernel", "module", "wifi", "driver", "fonts"),
    *("korean", "debian", "package", "data", "perl", "gtk", "bindings", "documentation"),
    *("development", "files", "utilities", "server", "client", "shared", "runtime", "tools"),
    *("plugin", "extension", "daemon", "network", "audio", "video", "image", "database"),
    *("parser", "compiler"),
]


def status_kib(pid: int, field: str) -> int:
    """A `VmXXX:` field of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (writes 5 to clear_refs); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def make_text(rng: random.Random, chars: int) -> str:
    """About `chars` characters of space-separated words, cut to exactly `chars`."""
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars]


def attack(args: argparse.Namespace, body: bytes) -> tuple[Counter[int], list[float], int]:
    """Run the threads; return the status counts, the latencies of 200s (ms), transport errors."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + args.duration
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    url = f"{args.url}/v1/models/{args.model_id}/predict"

    def worker() -> None:
        nonlocal errors
        with httpx.Client(timeout=300, headers=headers) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = client.post(url, content=body)
                except httpx.HTTPError:
                    with lock:
                        errors += 1
                    continue
                elapsed = 1000 * (time.perf_counter() - started)
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, latencies, errors


def main() -> None:
    """Parse the options, measure, print the JSON row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API, e.g. http://127.0.0.1:8131")
    parser.add_argument("--key", required=True, help="an API key of the model's owner")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--pid", type=int, required=True, help="the `elmo api` process")
    parser.add_argument("--texts", type=int, default=10)
    parser.add_argument("--chars", type=int, default=100_000, help="characters per text")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    texts = [make_text(rng, args.chars) for _ in range(args.texts)]
    body = json.dumps({"texts": texts, "k": args.k}).encode()
    baseline = status_kib(args.pid, "VmRSS")
    hwm_before = status_kib(args.pid, "VmHWM")
    reset = reset_peak(args.pid)
    sampled = [baseline]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            sampled.append(status_kib(args.pid, "VmRSS"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    statuses, latencies, errors = attack(args, body)
    wall = time.monotonic() - started
    sampling.set()
    sampler.join()
    mib = 1 / 1024
    row = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "texts": args.texts,
        "chars_per_text": args.chars,
        "request_chars": args.texts * args.chars,
        "body_bytes": len(body),
        "k": args.k,
        "concurrency": args.concurrency,
        "duration_s": round(wall, 1),
        "requests": sum(statuses.values()),
        "status": {str(code): n for code, n in sorted(statuses.items())},
        "transport_errors": errors,
        "p50_ms_200": round(statistics.median(latencies), 1) if latencies else None,
        "rss_baseline_mib": round(baseline * mib, 1),
        "rss_peak_mib": round(status_kib(args.pid, "VmHWM") * mib, 1),
        "rss_peak_sampled_mib": round(max(sampled) * mib, 1),
        "rss_after_mib": round(status_kib(args.pid, "VmRSS") * mib, 1),
        "hwm_before_mib": round(hwm_before * mib, 1),
        "hwm_reset": reset,
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
