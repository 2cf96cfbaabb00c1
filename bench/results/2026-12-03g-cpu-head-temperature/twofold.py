"""Held-out check of the fitted head temperature: on a trained model's validation slice, choose
(T, a, b) on one random half and score P@1 on the other (both ways, five random cuts), with T
fixed at 1 against T from a grid: `python twofold.py MODEL DATA 1,1.5,2`."""

import itertools
import sys

import numpy as np
import torch

from elmo_core.data import load_dataset
from elmo_core.data.splits import select_splits
from elmo_core.fusion import fuse_topk
from elmo_core.model import load_model
from elmo_core.model.evaluation import ranking_depth
from elmo_core.model.scoring import predict_topk

WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]


def top1_hits(top: np.ndarray, filtered: set, labels) -> np.ndarray:
    """1 where a row's first ranked label that is not a filter pair is a true label."""
    hits = np.zeros(top.shape[0])
    for row in range(top.shape[0]):
        for label in top[row]:
            if (row, label) in filtered:
                continue
            hits[row] = float(label >= 0 and labels[row, label] > 0)
            break
    return hits


def main(model_dir: str, data: str, temperatures: list[float]) -> None:
    """Print each cut's held-out P@1 with T = 1 only and with the grid, and the picks."""
    model = load_model(model_dir, "cpu")
    config = model.config
    dataset = load_dataset(data, format=config.data.format, empty_rows="keep")
    val = select_splits(config, dataset).validation
    fusion = model.fusion
    priors = fusion.prior_scores(val.texts, model.head.num_labels)
    k = ranking_depth(config.eval.ks, val)
    prepared = model.encoder.featurize(val.texts, val.features)
    width = max(k, fusion.candidates)
    logits, ids = predict_topk(
        model.encoder, model.head, prepared, val.num_points, width, 512, torch.device("cpu")
    )
    filtered = set(map(tuple, val.filter_pairs.tolist()))
    labels = val.labels.tocsr()
    hits = {}
    for t, a, b in itertools.product(temperatures, WEIGHTS, WEIGHTS):
        _, top = fuse_topk(logits, ids, priors.weighted(a, b), 1 + a + b, k, temperature=t)
        hits[(t, a, b)] = top1_hits(top, filtered, labels)
    rng = np.random.default_rng(0)
    for cut in range(5):
        order = rng.permutation(val.num_points)
        halves = order[: len(order) // 2], order[len(order) // 2 :]
        results = []
        for fit, held in (halves, halves[::-1]):
            for grid in ([1.0], temperatures):
                best = max(
                    (c for c in hits if c[0] in grid),
                    key=lambda c: (hits[c][fit].mean(), -grid.index(c[0]), -(c[1] + c[2]), -c[1]),
                )
                results.append((grid == [1.0], best, 100 * hits[best][held].mean()))
        one = np.mean([r[2] for r in results if r[0]])
        fitted = np.mean([r[2] for r in results if not r[0]])
        picks = [r[1] for r in results]
        print(f"cut {cut}: T=1 only {one:.2f}  T grid {fitted:.2f}  picks {picks}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [float(t) for t in sys.argv[3].split(",")])
