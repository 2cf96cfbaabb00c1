"""Where the GPU engine of a prior's search spends its time, step by step (issue 13, item 4).

Fits the label-text prior of a dataset directory (default config: character 3-5-grams, min_df 2)
and runs the torch engine's steps (`elmo_core.fusion.similarity.torch_topk`) on a few query
blocks of the test texts, synchronising the device after each: building the dense query block,
the sparse x dense product, the transpose, `torch.topk`, the copy back. Prints one JSON line per
working-set budget with the milliseconds per block and per 1,000 queries of each step.

    python bench/search_phases.py --data /tmp/a3m --device cuda --blocks 5 --memory-gib 4 16
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from elmo_core.data import XMCDataset, load_dataset
from elmo_core.fusion import LabelTextScorer
from elmo_core.fusion.similarity import dense_columns, search_batch
from elmo_core.fusion.sparse_io import torch_csr


def fitted_label_text_prior(data: Path, k: int) -> tuple[XMCDataset, LabelTextScorer, float]:
    """The dataset at `data`, its label-text prior as the default config fits it (character
    3-5-grams, min_df 2, `k` per text) and the seconds the fit took; the dataset has test texts."""
    dataset = load_dataset(data)
    assert dataset.train.texts is not None and dataset.label_texts is not None
    assert dataset.test is not None and dataset.test.texts is not None
    start = time.perf_counter()
    scorer = LabelTextScorer.fit(
        dataset.train.texts, dataset.label_texts, ngram_range=(3, 5), min_df=2, top=k
    )
    return dataset, scorer, time.perf_counter() - start


def main() -> None:
    """Parse the arguments, fit the prior, time the steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--memory-gib", type=float, nargs="+", default=[4.0])
    args = parser.parse_args()
    device = torch.device(args.device)
    dataset, scorer, fit_s = fitted_label_text_prior(args.data, args.k)
    assert dataset.test is not None and dataset.test.texts is not None
    index = torch_csr(scorer.label_matrix, device)
    num_rows, num_features = scorer.label_matrix.shape
    for gib in args.memory_gib:
        batch = search_batch(num_features, num_rows, int(gib * 2**30))
        queries = scorer.featurizer.transform(dataset.test.texts[: batch * args.blocks])
        steps = {"block": 0.0, "spmm": 0.0, "transpose": 0.0, "topk": 0.0, "copy": 0.0}
        for number in range(args.blocks + 1):  # the first block warms up, untimed
            rows = queries[number * batch % queries.shape[0] :][:batch]
            times = [time.perf_counter()]

            def lap(times: list[float] = times) -> None:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter())

            block = dense_columns(rows, num_features, device)
            lap()
            scores = index @ block
            lap()
            scores_t = scores.T.contiguous()
            lap()
            values, ids = torch.topk(scores_t, args.k, dim=1)
            lap()
            values.cpu(), ids.cpu()
            lap()
            if number:
                for name, (a, b) in zip(steps, itertools.pairwise(times), strict=True):
                    steps[name] += (b - a) * 1000 / args.blocks
            del block, scores, scores_t, values, ids
        print(
            json.dumps(
                {
                    "case": "search phases",
                    "labels": num_rows,
                    "features": num_features,
                    "index_nnz": int(scorer.label_matrix.nnz),
                    "fit_s": round(fit_s, 1),
                    "memory_gib": gib,
                    "batch": batch,
                    "ms_per_block": {name: round(ms, 2) for name, ms in steps.items()},
                    "ms_per_1000_queries": {
                        name: round(ms * 1000 / batch, 1) for name, ms in steps.items()
                    },
                    "device": torch.cuda.get_device_name(device)
                    if device.type == "cuda"
                    else "cpu",
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
