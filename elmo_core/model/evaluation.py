"""Evaluation of a model's ranking on one split: the one function the trainer (per epoch and for
the final test split), `elmo eval` and the benches use, so every number is computed the same way.

The metrics are those of the ranking the model serves (fused with the text priors when it has
them); with fusion, `head P@1` etc. are the head's ranking alone. Filter pairs are removed before
the top k (the LF datasets require it), so the ranking is fetched `ranking_depth` deep.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.config import EvalConfig
from elmo_core.data import XMCSplit
from elmo_core.encoders import Encoder
from elmo_core.fusion import FusedScorer, fuse_topk
from elmo_core.head import XMCHead
from elmo_core.metrics import evaluate, jain_propensities
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


def score_ids(
    ids: np.ndarray, split: XMCSplit, config: EvalConfig, propensities: np.ndarray
) -> dict[str, float]:
    """P/nDCG/PSP/R@k of ranked label ids (N x depth) on `split`, filter pairs removed."""
    return evaluate(
        ids, split.labels, ks=config.ks, propensities=propensities, filter_pairs=split.filter_pairs
    )


def evaluate_split(
    encoder: Encoder,
    head: XMCHead,
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
    if prepared is None:
        prepared = encoder.featurize(split.texts, split.features)
    if priors is None:
        priors = text_priors(encoder, fusion, split.texts, prepared, head.num_labels, device, log)
    depth = ranking_depth(config.ks, split)
    if fusion is None or not fusion.active or priors is None:
        _, ids = predict_topk(
            encoder, head, prepared, split.num_points, depth, config.batch_size, device
        )
        return score_ids(ids, split, config, propensities)
    width = max(depth, fusion.candidates)
    logits, ids = predict_topk(
        encoder, head, prepared, split.num_points, width, config.batch_size, device
    )
    head_metrics = score_ids(ids[:, :depth], split, config, propensities)
    _, fused_ids = fuse_topk(logits, ids, priors, fusion.scale, depth)
    metrics = score_ids(fused_ids, split, config, propensities)
    return {**metrics, **{f"head {key}": value for key, value in head_metrics.items()}}
