"""Choose the fusion settings on a validation slice: one trained model, every (k, power, T, a, b).

The model must come from a run with `data.validation_fraction` > 0 and `eval.split` "validation"
(its config says which slice); the priors do not depend on the head, so each is computed once per
neighbour count k (every vote power from the same search) and the grid costs one fusion per
cell. One line per (k, power, head temperature T): the P@1 of the votes alone and the best (a, b)
pair's metrics.

    python bench/fusion_grid.py --model RUN/model --data DIR [--device cuda] [--json OUT.json] \
        [--weights 0 0.25 0.5 1 2 4] [--neighbours 25 50 100] [--powers 1 2 3] \
        [--temperatures 1 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from elmo_core.data import load_dataset
from elmo_core.data.splits import select_splits
from elmo_core.fusion import LabelTextScorer, NeighbourScorer, fuse_topk, row_ranking
from elmo_core.model import load_model
from elmo_core.model.evaluation import ranking_depth, score_ids, split_propensities, split_truth
from elmo_core.model.scoring import predict_topk, shared_word_featurizer


def main() -> None:
    """Print and optionally save P@1/P@5/PSP@5 of every grid cell on the validation slice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--neighbours", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--powers", type=float, nargs="+", default=[1.0])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()

    model = load_model(args.model, args.device)
    config = model.config
    dataset = load_dataset(args.data, format=config.data.format, empty_rows="keep")
    splits = select_splits(config, dataset)
    train, val = splits.train, splits.validation
    if val is None:
        raise SystemExit("the model's run did not hold out a validation slice")
    fusion = config.fusion
    started = time.perf_counter()
    label_text = LabelTextScorer.fit(
        train.texts,
        dataset.label_texts,
        ngram_range=fusion.char_ngrams,
        min_df=fusion.min_df,
        top=fusion.candidates,
    )
    cosine = label_text.scores(val.texts)
    featurizer = shared_word_featurizer(model.encoder)
    votes = {}
    for n in args.neighbours:
        scorer = NeighbourScorer.fit(train.texts, train.labels, k=n, featurizer=featurizer)
        by_power = scorer.scores_by_power(val.texts, args.powers, top=fusion.candidates)
        votes.update({(n, power): scores for power, scores in by_power.items()})
    print(f"priors: {time.perf_counter() - started:.1f} s")
    k = ranking_depth(config.eval.ks, val)
    prepared = model.encoder.featurize(val.texts, val.features)
    logits, ids = predict_topk(
        model.encoder,
        model.head,
        prepared,
        val.num_points,
        max(k, fusion.candidates),
        512,
        torch.device(args.device),
    )
    propensities = split_propensities(train.labels, config.eval)
    truth = split_truth(val, config.eval, propensities)
    rows = []
    alone = {
        key: score_ids(row_ranking(v, k)[0], truth, config.eval)["P@1"] for key, v in votes.items()
    }
    for ((n, power), vote), t in itertools.product(votes.items(), args.temperatures):
        cells = []
        for a, b in itertools.product(args.weights, args.weights):
            prior = a * vote + b * cosine
            _, top = fuse_topk(logits, ids, prior, 1.0 + a + b, k, temperature=t)
            m = score_ids(top, truth, config.eval)
            cells.append({"neighbours": n, "power": power, "temperature": t, "a": a, "b": b, **m})
        rows += cells
        cell = max(cells, key=lambda r: r["P@1"])
        print(f"k={n:3d} power={power:g} T={t:g}  votes alone P@1 {alone[n, power]:.2f}  "
              f"best a={cell['a']:g} b={cell['b']:g}  P@1 {cell['P@1']:.2f}  "
              f"P@5 {cell['P@5']:.2f}  PSP@5 {cell['PSP@5']:.2f}")  # fmt: skip
    best = max(rows, key=lambda r: r["P@1"])
    print(f"best by P@1: {best}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
