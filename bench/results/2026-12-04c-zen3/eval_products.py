"""The evaluation's head top-100 at wordnet-taxonomy's shape (the two members' merged head: 20,359
labels x 1,026 dims, fp32 copy) on 2 cores: label chunk and batch size, and two one-thread lanes
against one two-thread call. Run from the repository root:
``python bench/results/2026-12-04c-zen3/eval_products.py``."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from step_products import mean_ms

from elmo_core.head.reference import ReferenceBackend, memory_chunk

LABELS, DIM, POINTS, K = 20359, 1026, 4096, 100


def main() -> None:
    """Print ms per 512 points and GFLOP/s of each way."""
    backend = ReferenceBackend()
    w, e = torch.randn(LABELS, DIM), torch.randn(POINTS, DIM)

    def auto(batch: int) -> int:
        return memory_chunk(LABELS, DIM, batch, torch.device("cpu"), True)

    def one_call(batch: int, chunk: int) -> Callable[[], None]:
        def run() -> None:
            for s in range(0, POINTS, batch):
                backend.topk(w, e[s : s + batch], K, chunk_size=chunk)

        return run

    pools = [
        ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) for _ in range(2)
    ]
    for pool in pools:
        pool.submit(int).result()
    torch.set_num_threads(2)

    def lanes(batch: int) -> Callable[[], None]:
        def run() -> None:
            calls = [
                pools[i % 2].submit(backend.topk, w, e[s : s + batch], K, chunk_size=auto(batch))
                for i, s in enumerate(range(0, POINTS, batch))
            ]
            for call in calls:
                call.result()

        return run

    cases = {}
    for batch in (512, 256, 128):
        for chunk in sorted({auto(batch), LABELS, 8192, 4096}, reverse=True):
            tag = " (the default)" if chunk == auto(batch) else ""
            cases[f"2 threads, batch {batch}, chunk {chunk}{tag}"] = one_call(batch, chunk)
    for batch in (512, 256):
        cases[f"2 lanes of 1 thread, batch {batch}"] = lanes(batch)
    for name, run in cases.items():
        seconds = mean_ms(run, repeats=2) / 1e3
        gflops = 2 * POINTS * LABELS * DIM / seconds / 1e9
        per_512 = seconds / POINTS * 512 * 1e3
        print(f"{name:48s} {per_512:7.1f} ms / 512 points  {gflops:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
