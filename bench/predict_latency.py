"""Latency of `Predictor.predict` (one text, and batches) on a trained model, fusion included.

python bench/predict_latency.py --model RUN/model --data DIR [--device cuda] [--repeats 50]
    [--no-float32-copy]   (CPU: score from the fp8/bf16 weights, converting them on every call)
"""

from __future__ import annotations

import argparse
import statistics
import time

from elmo_core.data import load_dataset
from elmo_core.inference import Predictor


def main() -> None:
    """Print median and p90 milliseconds per call for batch sizes 1, 16 and 256 (k = 10)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-float32-copy", action="store_true")
    args = parser.parse_args()
    texts = load_dataset(args.data, empty_rows="keep").test.texts
    started = time.perf_counter()
    predictor = Predictor.load(args.model, args.device)
    print(f"load: {time.perf_counter() - started:.2f} s (device {args.device})")
    if args.no_float32_copy:
        predictor.model.head.keep_float32_copy(max_bytes=0)
    predictor.predict(texts[:4], k=10)
    for batch in (1, 16, 256):
        times = []
        for i in range(args.repeats if batch < 256 else max(3, args.repeats // 10)):
            chunk = [texts[(i * batch + j) % len(texts)] for j in range(batch)]
            started = time.perf_counter()
            predictor.predict(chunk, k=10)
            times.append(1000 * (time.perf_counter() - started))
        times.sort()
        p90 = times[int(0.9 * (len(times) - 1))]
        print(f"batch {batch:4d}: median {statistics.median(times):8.1f} ms  p90 {p90:8.1f} ms")


if __name__ == "__main__":
    main()
