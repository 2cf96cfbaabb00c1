"""Where one epoch's validation evaluation with the fit goes, on a saved model: the head's top-k
of the slice, aligning the scores, 20 rankings and 20 scorings of one (T, a, b), and the whole
fit of the default grids (`python fitprof.py RUN/model DATA`; the model's run must have held out
a validation slice)."""

import sys
import time

import torch

from elmo_core.data import load_dataset
from elmo_core.data.splits import select_splits
from elmo_core.fusion.fit import AlignedScores, fit_weights
from elmo_core.model import load_model
from elmo_core.model.evaluation import ranking_depth, score_ids, split_propensities, split_truth
from elmo_core.model.scoring import predict_topk


def timed(name: str, started: float) -> None:
    """Print the seconds since `started`."""
    print(f"{name}: {time.perf_counter() - started:.3f} s")


def main(model_dir: str, data: str) -> None:
    """Time the steps of `evaluate_split_fitting_weights` one by one."""
    model = load_model(model_dir, "cpu")
    config, fusion = model.config, model.config.fusion
    dataset = load_dataset(data, format=config.data.format, empty_rows="keep")
    splits = select_splits(config, dataset)
    train, val = splits.train, splits.validation
    assert val is not None and model.fusion is not None
    priors = model.fusion.prior_scores(val.texts, model.head.num_labels)
    depth = ranking_depth(config.eval.ks, val)
    prepared = model.encoder.featurize(val.texts, val.features)
    started = time.perf_counter()
    width = max(depth, fusion.candidates)
    cpu = torch.device("cpu")
    logits, ids = predict_topk(
        model.encoder, model.head, prepared, val.num_points, width, config.eval.batch_size, cpu
    )
    timed(f"head top-{width} of {val.num_points} points", started)
    truth = split_truth(val, config.eval, split_propensities(train.labels, config.eval))
    started = time.perf_counter()
    aligned = AlignedScores(logits, ids, priors)
    timed(f"align (width {aligned.width})", started)
    started = time.perf_counter()
    for _ in range(20):
        ranking = aligned.ranking(1.0, 1.0, depth, 2.0)
    timed("20 rankings", started)
    started = time.perf_counter()
    for _ in range(20):
        score_ids(ranking, truth, config.eval)
    timed("20 scorings", started)
    started = time.perf_counter()
    fit = fit_weights(
        logits,
        ids,
        priors,
        fusion.weight_grid,
        depth,
        lambda ranked: score_ids(ranked, truth, config.eval),
        config.eval.select_metric,
        fusion.temperature_grid,
    )
    timed(f"fit of {fit.pairs} combinations", started)
    print(
        f"chosen T {fit.head_temperature:g}, a {fit.neighbour_weight:g}, "
        f"b {fit.label_text_weight:g}: P@1 {fit.metrics['P@1']:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
