"""Evaluation of a model's ranking on one split: the one function the trainer (per epoch and for
the final test split), `elmo eval` and the benches use, so every number is computed the same way.

The metrics are those of the ranking the model serves (fused with the text priors when it has
them); with fusion, `head P@1` etc. are the head's ranking alone. Filter pairs are removed before
the top k (the LF datasets require it), so the ranking is fetched `ranking_depth` deep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.config import EvalConfig
from elmo_core.data import XMCSplit
from elmo_core.encoders import TrainingEncoder
from elmo_core.errors import ConfigError
from elmo_core.fusion import FusedScorer, PriorScores, WeightFit, fit_weights
from elmo_core.head import TrainingHead
from elmo_core.metrics import (
    RankingTruth,
    evaluate_ranking,
    evaluate_rankings,
    jain_propensities,
    prepare_truth,
)
from elmo_core.model.scoring import predict_topk, text_priors


def max_filters_per_row(pairs: np.ndarray, num_rows: int) -> int:
    """The most filter pairs any one row has (the extra predictions to fetch before filtering)."""
    if pairs.shape[0] == 0:
        return 0
    return int(np.bincount(pairs[:, 0], minlength=num_rows).max())


def ranking_depth(ks: list[int], split: XMCSplit) -> int:
    """How many labels per point to rank so that `max(ks)` remain after the filter pairs."""
    return max(ks) + max_filters_per_row(split.filter_pairs, split.num_points)


def split_propensities(train_labels: sp.csr_matrix, config: EvalConfig) -> np.ndarray:
    """The PSP@k propensities (Jain et al. 2016) from the label counts of the run's train split."""
    return jain_propensities(train_labels, config.propensity_a, config.propensity_b)


def split_truth(split: XMCSplit, config: EvalConfig, propensities: np.ndarray) -> RankingTruth:
    """`split`'s ground truth (its filter pairs, the run's propensities) prepared once for
    scoring any number of its rankings with `score_ids`."""
    return prepare_truth(split.labels, max(config.ks), propensities, split.filter_pairs)


def score_ids(ids: np.ndarray, truth: RankingTruth, config: EvalConfig) -> dict[str, float]:
    """P/nDCG/PSP/R@k of ranked label ids (N x depth) of a split (`split_truth`), filter pairs
    removed."""
    return evaluate_ranking(ids, truth, config.ks)


def score_rankings(
    rankings: np.ndarray,
    truth: RankingTruth,
    config: EvalConfig,
    ks: Sequence[int] | None = None,
) -> list[dict[str, float]]:
    """`score_ids` of each of R rankings of a split (R x N x depth label ids) at once, at `ks`
    (None: the configured ones)."""
    return evaluate_rankings(rankings, truth, config.ks if ks is None else ks)


def evaluate_split(
    encoder: TrainingEncoder,
    head: TrainingHead,
    fusion: FusedScorer | None,
    split: XMCSplit,
    *,
    config: EvalConfig,
    propensities: np.ndarray,
    device: torch.device,
    prepared: object | None = None,
    priors: sp.csr_matrix | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """The metrics of the model's ranking of `split` (see the module doc).

    `prepared` (the encoder's `featurize` of the split) and `priors` (its text priors) may be
    passed when the caller has them cached; otherwise they are computed here (on `device`, with
    each prior's plan sent to `log`).
    """
    clock = _StepClock(log)
    if prepared is None:
        prepared = encoder.featurize(split.texts, split.features)
        clock.lap("featurize")
    if priors is None:
        priors = text_priors(encoder, fusion, split.texts, prepared, head.num_labels, device, log)
        clock.lap("priors")
    depth = ranking_depth(config.ks, split)
    batch = config.batch_size
    truth = split_truth(split, config, propensities)
    if fusion is None or not fusion.active or priors is None:
        _, ids = predict_topk(encoder, head, prepared, split.num_points, depth, batch, device)
        clock.lap("head top-k")
        metrics = score_ids(ids, truth, config)
        clock.lap("metrics")
        clock.report(split.num_points)
        return metrics
    width = max(depth, fusion.candidates)
    logits, ids = predict_topk(encoder, head, prepared, split.num_points, width, batch, device)
    clock.lap("head top-k")
    head_metrics = score_ids(ids[:, :depth], truth, config)
    clock.lap("head metrics")
    _, fused_ids = fusion.fuse_topk(logits, ids, priors, depth)
    clock.lap("fusion")
    metrics = score_ids(fused_ids, truth, config)
    clock.lap("metrics")
    clock.report(split.num_points)
    return {**metrics, **{f"head {key}": value for key, value in head_metrics.items()}}


class _StepClock:
    """Wall seconds of an evaluation's steps, reported as one `log` line (nothing without log)."""

    def __init__(self, log: Callable[[str], None] | None) -> None:
        self.log = log
        self.laps: list[tuple[str, float]] = []
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self.last))
        self.last = now

    def report(self, num_points: int) -> None:
        if self.log is not None:
            steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.laps)
            self.log(f"evaluated {num_points:,} points: {steps}")


def evaluate_split_fitting_weights(
    encoder: TrainingEncoder,
    head: TrainingHead,
    fusion: FusedScorer,
    split: XMCSplit,
    *,
    config: EvalConfig,
    propensities: np.ndarray,
    device: torch.device,
    priors: PriorScores,
    grid: Sequence[float],
    temperatures: Sequence[float] = (1.0,),
    prepared: object | None = None,
    linear_grid: Sequence[float] | None = None,
) -> tuple[dict[str, float], WeightFit]:
    """Fit the fusion weights on `split` (a validation slice, never a test split) and return
    the metrics of the chosen weights, as `evaluate_split` names them, with the fit.

    The head ranks the split once; each head temperature of `temperatures` with each (a, b) of
    `grid` and c of `linear_grid` over the priors `fusion` has only re-fuses those candidates
    with `priors` (each prior's unweighted scores of the split), and the best by
    `config.select_metric` wins
    (`elmo_core.fusion.fit`).
    """
    if prepared is None:
        prepared = encoder.featurize(split.texts, split.features)
    depth = ranking_depth(config.ks, split)
    width = max(depth, fusion.candidates)
    batch = config.batch_size
    logits, ids = predict_topk(encoder, head, prepared, split.num_points, width, batch, device)
    truth = split_truth(split, config, propensities)
    head_metrics = score_ids(ids[:, :depth], truth, config)
    if config.select_metric not in head_metrics:
        raise ConfigError(
            f"eval.select_metric {config.select_metric!r} is not one of {sorted(head_metrics)}"
        )
    fit = fit_weights(
        logits,
        ids,
        priors,
        grid,
        depth,
        lambda rankings, ks: score_rankings(rankings, truth, config, ks),
        config.select_metric,
        temperatures,
        linear_grid,
    )
    head_keys = {f"head {key}": value for key, value in head_metrics.items()}
    return {**fit.metrics, **head_keys}, fit
