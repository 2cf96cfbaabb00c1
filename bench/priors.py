"""Time the text priors' similarity search (`elmo_core.fusion.similarity`) on synthetic TF-IDF rows.

Index and query rows draw `--nnz` features each from a Zipf distribution over `--features` (common
features make the products nearly dense, as words and character n-grams do), with positive
weights, rows L2-normalised; seeded. Each engine searches the top `--k` index rows of every query;
one JSON line per run: queries/s, seconds, the cost model's operations and estimate (so the rates
in `similarity.py` can be checked), and the agreement with the first run.

    python bench/priors.py --index 100000 --queries 2000 --features 100000 --workers 1 0
    python bench/priors.py --device cuda --index 490000 --queries 20000 --features 500000

`--workers 0` means every available core. `--device cuda` adds the torch engine on the GPU;
`--torch-cpu` the torch engine on the CPU (the tests' reference of the GPU code path).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.fusion.similarity import (
    GPU_MEMORY_BYTES,
    QUERY_CHUNK,
    SimilarityIndex,
    cpu_topk,
    cpu_workers,
    search_cost,
    torch_topk,
)


def zipf_rows(
    rng: np.random.Generator, num_rows: int, num_features: int, nnz: int, exponent: float
) -> sp.csr_matrix:
    """num_rows x num_features float32 CSR: `nnz` Zipf-drawn features a row (repeats merged into
    a sublinear tf), uniform random weights, rows L2-normalised."""
    cdf = np.cumsum(1.0 / np.arange(1, num_features + 1) ** exponent)
    cdf /= cdf[-1]
    columns = np.minimum(np.searchsorted(cdf, rng.random(num_rows * nnz)), num_features - 1)
    rows = np.repeat(np.arange(num_rows), nnz)
    ones = np.ones(len(columns), dtype=np.float32)
    matrix = sp.csr_matrix((ones, (rows, columns)), shape=(num_rows, num_features))
    matrix.sum_duplicates()
    matrix.data = (1.0 + np.log(matrix.data)) * (0.1 + rng.random(matrix.nnz, dtype=np.float32))
    lengths = np.diff(matrix.indptr)
    norms = np.sqrt(np.bincount(np.repeat(np.arange(num_rows), lengths), matrix.data**2))
    matrix.data /= np.repeat(norms, lengths).astype(np.float32)
    return matrix


def agreement(found: sp.csr_matrix, reference: sp.csr_matrix) -> dict[str, float]:
    """How closely `found` matches `reference` (same queries, top k each): the share of rows with
    the same set of ids, and the largest difference of their sorted values (ties may pick other
    ids of the same value)."""
    same, worst = 0, 0.0
    for row in range(found.shape[0]):
        a, b = found[row], reference[row]
        same += int(np.array_equal(a.indices, b.indices))
        va, vb = np.sort(a.data)[::-1], np.sort(b.data)[::-1]
        if len(va) != len(vb):
            return {"same_ids": same / max(found.shape[0], 1), "max_value_diff": math.inf}
        worst = max(worst, float(np.abs(va - vb).max(initial=0.0)))
    return {"same_ids": same / max(found.shape[0], 1), "max_value_diff": worst}


def main() -> None:
    """Print one JSON line per engine run (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=100_000, help="index rows (train texts)")
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--features", type=int, default=100_000)
    parser.add_argument("--nnz", type=int, default=60, help="features drawn per row")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the features")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 0], help="0: all cores")
    parser.add_argument(
        "--cpu-queries", type=int, default=None, help="the CPU engines search only these first"
    )
    parser.add_argument("--device", default=None, help="e.g. cuda: add the torch engine there")
    parser.add_argument("--torch-cpu", action="store_true", help="add the torch engine on CPU")
    parser.add_argument("--memory-gib", type=float, default=GPU_MEMORY_BYTES / 2**30)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    index = SimilarityIndex(zipf_rows(rng, args.index, args.features, args.nnz, args.zipf))
    queries = zipf_rows(rng, args.queries, args.features, args.nnz, args.zipf)
    columns = index.columns
    df = index.document_frequencies
    shape = {
        "index": args.index,
        "queries": args.queries,
        "features": args.features,
        "index_nnz": int(index.rows.nnz),
        "query_nnz": int(queries.nnz),
        "k": args.k,
        "postings_per_query": float(df[queries.indices].sum()) / max(args.queries, 1),
        "setup_s": round(time.perf_counter() - started, 2),
    }
    print(json.dumps({"shape": shape}), flush=True)

    reference: sp.csr_matrix | None = None
    runs: list[tuple[str, int | None, torch.device | None]] = [
        ("cpu", None if w == 0 else w, None) for w in args.workers
    ]
    if args.torch_cpu:
        runs.append(("torch", None, torch.device("cpu")))
    if args.device is not None and torch.device(args.device).type != "cpu":
        runs.append(("torch", None, torch.device(args.device)))
    memory = int(args.memory_gib * 2**30)
    cpu_queries = queries[: args.cpu_queries] if args.cpu_queries else queries
    for engine, workers, device in runs:
        on_device = device is not None and device.type != "cpu"
        searched = cpu_queries if device is None or not on_device else queries
        count = cpu_workers(workers, math.ceil(searched.shape[0] / QUERY_CHUNK))
        engine_kind = "spmm" if on_device else "cpu"
        cost = search_cost(df, args.index, searched, engine=engine_kind, workers=count)
        if on_device:
            assert device is not None
            torch_topk(index.rows, queries[:64], args.k, device, memory)  # warm-up
        started = time.perf_counter()
        if device is None:
            found = cpu_topk(searched, columns, args.k, workers)
        else:
            found = torch_topk(index.rows, searched, args.k, device, memory)
        seconds = time.perf_counter() - started
        ops = cost.fixed_ops + float(cost.costs.sum())
        line: dict[str, object] = {
            "engine": engine,
            "device": "cpu" if device is None else str(device),
            "workers": count if device is None else None,
            "queries": searched.shape[0],
            "seconds": round(seconds, 3),
            "queries_per_s": round(searched.shape[0] / seconds, 1),
            "model_ops": ops,
            "model_estimate_s": round(cost.seconds(), 3),
            "measured_ops_per_s": ops / max(seconds - cost.fixed_s, 1e-9),
        }
        if device is None:
            line["measured_ops_per_s_per_worker"] = ops / max(seconds, 1e-9) / count
        if reference is None:
            reference = found
        else:
            rows = min(found.shape[0], reference.shape[0])
            line.update(agreement(found[:rows], reference[:rows]))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
