"""The device engines of a prior's search side by side, at the caps a model would choose (issue 13,
item 4): the SpMM engine (`similarity.torch_topk`: every stored value of the index meets a dense
block of queries) and the posting-list engine (`posting_search.posting_topk`: each query reads its
own features' posting lists, a sparse x sparse product and a per-query top-k).

Fits the label-text prior of a dataset directory (character 3-5-grams, min_df 2), then for each
cap (`plan:TEXTS:SECONDS` plans it as a model would for TEXTS texts in SECONDS on a GPU; an
integer is a document-frequency cap; `none` keeps every feature) times each engine on the first
`--queries` test texts, and prints one JSON line per (cap, engine): the
seconds and milliseconds per 1,000 queries, the products per query, the kept share of the
queries' TF-IDF weight, and the share of each query's top-k ids equal to the SpMM engine's.

    python bench/search_engines.py --data /tmp/a3m --queries 20000 \
        --caps plan:519755:52 plan:519755:26 3000 30000 --engines spmm posting
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from search_phases import fitted_label_text_prior

from elmo_core.fusion.posting_search import posting_topk, query_products
from elmo_core.fusion.similarity import SearchOptions, keep_columns, torch_topk
from elmo_core.fusion.sparse_topk import row_ranking


def main() -> None:
    """Parse the arguments, fit the prior, time the engines per cap."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--caps", nargs="+", default=["none"])
    parser.add_argument(
        "--engines", nargs="+", choices=["spmm", "posting"], default=["spmm", "posting"]
    )
    parser.add_argument("--memory-gib", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=None, help="also append the rows here")
    args = parser.parse_args()
    device = torch.device(args.device)
    memory = int(args.memory_gib * 2**30)
    dataset, scorer, fit_s = fitted_label_text_prior(args.data, args.k)
    assert dataset.test is not None and dataset.test.texts is not None
    texts = dataset.test.texts[: args.queries]
    all_queries = scorer.featurizer.transform(texts)
    index = scorer.index
    for cap in args.caps:
        if cap.startswith("plan:"):
            _, planned_texts, seconds = cap.split(":")
            sample = dataset.train.texts[:10_000]
            options = SearchOptions(device=device, log=print)
            index.max_df = None
            scorer.plan_cap(sample, options, texts=int(planned_texts), budget_s=float(seconds))
        else:
            index.max_df = None if cap == "none" else int(cap)
        kept = index.kept
        queries = all_queries if kept is None else keep_columns(all_queries, kept)
        weight = float((queries.data.astype(np.float64) ** 2).sum())
        kept_weight = weight / max(float((all_queries.data.astype(np.float64) ** 2).sum()), 1e-30)
        products = query_products(queries, index.document_frequencies)
        columns = index.columns
        reference_ids: np.ndarray | None = None
        for engine in args.engines:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            began = time.perf_counter()
            if engine == "spmm":
                found = torch_topk(index.kept_rows, queries, args.k, device, memory)
                ids = row_ranking(found, args.k)[0]
            else:
                _, ids = posting_topk(columns, queries, args.k, device, memory)
            seconds = time.perf_counter() - began
            agreement = None
            if engine == "spmm":
                reference_ids = ids
            elif reference_ids is not None:
                same = [
                    len(set(a[a >= 0]) & set(b)) / max(int((a >= 0).sum()), 1)
                    for a, b in zip(reference_ids[:2000], ids[:2000], strict=True)
                ]
                agreement = round(float(np.mean(same)), 4)
            row = {
                "case": "search engines",
                "labels": index.shape[0],
                "features": index.shape[1],
                "index_nnz": int(index.rows.nnz),
                "kept_nnz": int(columns.nnz),
                "fit_s": round(fit_s, 1),
                "cap": cap,
                "max_df": index.max_df,
                "kept_weight": round(kept_weight, 4),
                "queries": int(queries.shape[0]),
                "products_per_query": round(float(products.mean()), 1),
                "engine": engine,
                "seconds": round(seconds, 3),
                "ms_per_1000_queries": round(seconds * 1e6 / max(queries.shape[0], 1), 1),
                "top_ids_equal_to_spmm": agreement,
                "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if device.type == "cuda"
                else None,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            }
            print(json.dumps(row), flush=True)
            if args.json is not None:
                with args.json.open("a") as out:
                    out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
