"""Assembling a run's model from its config and train split: the fit split (train, plus label
texts as points), the text priors of score fusion (and their vote power, chosen on the validation
slice), and the head's start from label texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.config import TrainConfig
from elmo_core.data import XMCSplit
from elmo_core.encoders import TrainingEncoder
from elmo_core.errors import ConfigError
from elmo_core.fusion import FusedScorer, PriorScores, fit_vote_power
from elmo_core.fusion.fused import PLAN_SAMPLE
from elmo_core.head import TrainingHead
from elmo_core.model.evaluation import ranking_depth, score_rankings, split_truth
from elmo_core.model.scoring import shared_word_featurizer


def with_label_points(
    config: TrainConfig, train: XMCSplit, label_texts: Sequence[str] | None
) -> XMCSplit:
    """The split the encoder and head are fitted on: train, plus the label texts as points
    (label l's text labelled l) when `data.label_texts_as_points` is set."""
    if not config.data.label_texts_as_points:
        return train
    if label_texts is None or train.texts is None:
        raise ConfigError("data.label_texts_as_points needs raw texts and label texts")
    identity = sp.identity(len(label_texts), dtype=np.float32, format="csr")
    return XMCSplit(
        labels=sp.vstack([train.labels, identity], format="csr"),
        texts=list(train.texts) + list(label_texts),
        features=None,
        filter_pairs=train.filter_pairs,
    )


def fit_priors(
    config: TrainConfig,
    train: XMCSplit,
    label_texts: Sequence[str] | None,
    encoder: TrainingEncoder,
    train_inputs: object,
    log: Callable[[str], None],
    *,
    linear: bool,
) -> FusedScorer | None:
    """The text priors, fitted on the train split (on the CPU); None when fusion is off or has
    no texts. Their feature caps are planned next (`plan_priors`). `linear`: the run fits the
    fusion weights on a validation slice, so the linear prior may be fitted (its weight has no
    validated fixed value: without a fit it is off).

    `train_inputs` are the encoder's prepared rows of the fit split (train's rows first): with a
    `tfidf` encoder they are the neighbour prior's word rows too, reused rather than redone.
    """
    cfg = config.fusion
    if not cfg.active:
        return None
    if train.texts is None:
        log("fusion needs raw texts; this dataset has none: the head ranks alone")
        return None
    if cfg.linear_weight > 0 and not linear:
        log("linear prior off: its weight is only fitted on a validation slice, not here")
    fusion = FusedScorer.fit(
        train.texts,
        train.labels,
        label_texts,
        label_text_weight=cfg.label_text_weight,
        neighbour_weight=cfg.neighbour_weight,
        neighbours=cfg.neighbours,
        vote_power=1.0 if cfg.vote_power is None else cfg.vote_power,
        candidates=cfg.candidates,
        head_temperature=cfg.head_temperature,
        char_ngrams=cfg.char_ngrams,
        min_df=cfg.min_df,
        word_featurizer=shared_word_featurizer(encoder),
        word_rows=_train_word_rows(encoder, train, train_inputs),
        linear_weight=cfg.linear_weight if linear else 0.0,
        linear_c=cfg.linear_c,
        linear_min_points=cfg.linear_min_points,
        linear_max_cost=cfg.linear_max_cost,
        log=log,
    )
    log(
        f"fusion: label-text weight {fusion.label_text_weight}, "
        f"neighbour weight {fusion.neighbour_weight}, linear weight {fusion.linear_weight}"
    )
    return fusion


def plan_priors(
    fusion: FusedScorer,
    train: XMCSplit,
    encoder: TrainingEncoder,
    train_inputs: object,
    log: Callable[[str], None],
    *,
    search_texts: int,
    device: torch.device | None = None,
) -> None:
    """Fix the priors' feature caps for `search_texts` texts (the run's largest split to score)
    on `device`'s engine (`FusedScorer.plan_searches`, on the first `PLAN_SAMPLE` train texts)."""
    assert train.texts is not None
    fusion.plan_searches(
        train.texts[:PLAN_SAMPLE],
        texts=search_texts,
        word_rows=_train_word_rows(encoder, train, train_inputs, PLAN_SAMPLE),
        device=device,
        log=log,
    )


def _train_word_rows(
    encoder: TrainingEncoder, train: XMCSplit, train_inputs: object, limit: int | None = None
) -> sp.csr_matrix | None:
    """The first `limit` (None: all) train texts' neighbour-prior word rows when the encoder's
    input is exactly those; None otherwise."""
    if shared_word_featurizer(encoder) is None:
        return None
    assert isinstance(train_inputs, sp.csr_matrix)
    rows = train.num_points if limit is None else min(limit, train.num_points)
    return train_inputs[:rows]


def vote_powers(config: TrainConfig, fusion: FusedScorer | None) -> list[float]:
    """The neighbour vote powers to choose from on the validation slice: none when the config
    sets the power or there is no neighbour prior."""
    cfg = config.fusion
    if cfg.vote_power is not None or fusion is None or fusion.neighbours is None:
        return []
    return list(cfg.vote_power_grid)


def choose_vote_power(
    config: TrainConfig,
    fusion: FusedScorer,
    scores: PriorScores,
    split: XMCSplit,
    propensities: np.ndarray,
    log: Callable[[str], None],
) -> PriorScores:
    """Set the neighbour prior's vote power to the one whose votes alone rank the validation
    slice `split` best (`fit_vote_power`, among `scores.votes_by_power`); `scores` with those
    votes. Without powers to choose from, `scores` as they are."""
    if scores.votes_by_power is None:
        return scores
    assert fusion.neighbours is not None
    cfg = config.eval
    truth = split_truth(split, cfg, propensities)
    power, values = fit_vote_power(
        scores.votes_by_power,
        ranking_depth(cfg.ks, split),
        lambda rankings, ks: score_rankings(rankings, truth, cfg, ks),
        cfg.select_metric,
    )
    fusion.neighbours.power = power
    tried = ", ".join(f"{p:g}: {value:.2f}" for p, value in values.items())
    log(
        f"neighbour votes: similarity ** {power:g}, chosen on the validation slice "
        f"({cfg.select_metric} of the votes alone by power: {tried})"
    )
    return replace(scores, neighbours=scores.votes_by_power[power], votes_by_power=None)


@torch.no_grad()
def init_head_from_label_texts(
    config: TrainConfig,
    head: TrainingHead,
    encoder: TrainingEncoder,
    label_texts: Sequence[str] | None,
    device: torch.device,
    log: Callable[[str], None],
) -> None:
    """Row l <- factor x encoder(label text l) (bias column 0): a text-similarity prior."""
    factor = config.head.init_from_label_texts
    if not factor:
        return
    if label_texts is None:
        log("head.init_from_label_texts is set but the dataset has no label texts")
        return
    texts = list(label_texts)
    inputs = encoder.featurize(texts, None)
    weights = torch.zeros(len(texts), encoder.dim, dtype=torch.float32)
    batch = config.eval.batch_size
    encoder.eval()
    for start in range(0, len(texts), batch):
        rows = np.arange(start, min(start + batch, len(texts)))
        out = encoder(encoder.make_batch(inputs, rows, device)).float()
        weights[rows] = out.cpu() * factor
    encoder.train()
    if getattr(encoder, "bias_feature", 0.0):  # the bias columns (one per member) start at 0
        weights[:, encoder.dim - getattr(encoder, "bias_columns", 1) :] = 0.0
    head.load_weights(weights.to(device))
