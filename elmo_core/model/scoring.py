"""Scoring: encoder + head (+ text priors) -> ranked labels, never B x L scores in memory.

Training's evaluation, `elmo eval` and `Predictor` all rank through `rank_topk`, so the metrics a
run reports are those of the predictions the model serves. The rule that a `tfidf` encoder and the
neighbour prior share one word TF-IDF featurizer (fitted once, stored once, applied once per text)
is written here, in `shared_word_featurizer` and `prior_word_rows`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.encoders import MemberEncoders, SparseEncoder, TrainingEncoder
from elmo_core.fusion import FusedScorer, head_probabilities
from elmo_core.head import TrainingHead
from elmo_core.text_features import TfidfFeaturizer

CPU_FLOAT32_HEAD_SHARE = 0.25
"""On a CPU, heads whose fp32 size is at most this share of the host's RAM are scored from an fp32
copy of their fp8/bf16 weights (exact; no per-call conversion): 87 MB for debian-deps; 4.3 GB for
a 2.81M-label head, where converting on every call made one text take 4.0 s instead of 0.5 s."""


def cpu_float32_head_bytes() -> int:
    """The largest fp32 head copy CPU scoring keeps: `CPU_FLOAT32_HEAD_SHARE` of the RAM."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 30
    return int(total * CPU_FLOAT32_HEAD_SHARE)


def shared_word_featurizer(encoder: TrainingEncoder) -> TfidfFeaturizer | None:
    """The word TF-IDF the neighbour prior shares with the encoder: a `tfidf` encoder's own
    featurizer (its input rows are then the prior's rows too), else None (the prior fits its
    own)."""
    return encoder.featurizer if isinstance(encoder, SparseEncoder | MemberEncoders) else None


def prior_word_rows(
    encoder: TrainingEncoder, fusion: FusedScorer | None, prepared: object
) -> sp.csr_matrix | None:
    """The encoder's prepared rows when they are also the neighbour prior's word rows (the
    prior uses the encoder's featurizer), else None (the prior featurizes the texts itself)."""
    featurizer = shared_word_featurizer(encoder)
    if featurizer is None or fusion is None or fusion.neighbours is None:
        return None
    if fusion.neighbours.featurizer is not featurizer:
        return None
    assert isinstance(prepared, sp.csr_matrix)
    return prepared


def text_priors(
    encoder: TrainingEncoder,
    fusion: FusedScorer | None,
    texts: Sequence[str] | None,
    prepared: object,
    num_labels: int,
    device: torch.device | None = None,
    log: Callable[[str], None] | None = None,
) -> sp.csr_matrix | None:
    """The weighted text priors of `texts` (N x L), or None without texts or active priors.

    `device`: a GPU runs the priors' similarity searches there, else they run on every CPU core;
    `log` receives each prior's plan (see `FusedScorer.priors`).
    """
    if fusion is None or not fusion.active or texts is None:
        return None
    word_rows = prior_word_rows(encoder, fusion, prepared)
    return fusion.priors(texts, num_labels, word_rows, device=device, log=log)


@torch.no_grad()
def predict_topk(
    encoder: TrainingEncoder,
    head: TrainingHead,
    prepared: Any,
    num_rows: int,
    k: int,
    batch_size: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits (float32) and label ids (int64) of the k best labels of every row, best first.

    `prepared` is the encoder's `featurize` output for the rows; `k` is capped at the label count.
    """
    k = min(int(k), head.num_labels)
    if device.type == "cpu" and num_rows > batch_size:
        # More than one batch: convert the low-precision weights to fp32 once, not per batch
        # (the same products; the copy goes with the next training step).
        head.keep_float32_copy(cpu_float32_head_bytes())
    was_training = encoder.training
    encoder.eval()
    scores = np.empty((num_rows, k), dtype=np.float32)
    ids = np.empty((num_rows, k), dtype=np.int64)
    try:
        for start in range(0, num_rows, batch_size):
            rows = np.arange(start, min(start + batch_size, num_rows))
            embedding = encoder(encoder.make_batch(prepared, rows, device)).float()
            values, labels = head.topk(embedding, k)
            scores[rows] = values.cpu().numpy()
            ids[rows] = labels.cpu().numpy()
    finally:
        encoder.train(was_training)
    return scores, ids


def rank_topk(
    encoder: TrainingEncoder,
    head: TrainingHead,
    prepared: Any,
    num_rows: int,
    k: int,
    batch_size: int,
    device: torch.device,
    fusion: FusedScorer | None = None,
    priors: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores in [0, 1] (N x k float32) and label ids (N x k int64) of every row, best first.

    Without an active `fusion` the scores are the head's sigmoid probabilities; with one, `priors`
    (`fusion.priors` of the same rows) is fused with the head's `fusion.candidates` best labels.
    """
    if fusion is None or not fusion.active:
        logits, ids = predict_topk(encoder, head, prepared, num_rows, k, batch_size, device)
        return head_probabilities(logits).astype(np.float32), ids
    if priors is None:
        raise ValueError("fused ranking needs the priors of the rows (FusedScorer.priors)")
    k = min(int(k), head.num_labels)
    width = max(k, fusion.candidates)
    logits, ids = predict_topk(encoder, head, prepared, num_rows, width, batch_size, device)
    return fusion.fuse_topk(logits, ids, priors, k)
