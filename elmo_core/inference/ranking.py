"""The model's ranking: the head's top-k alone, or fused with the text priors (`elmo_core.fusion`).

Training's evaluation, `elmo eval` and `Predictor` all rank through `rank_topk`, so the metrics a
run reports are those of the predictions the model serves.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.fusion import FusedScorer, fuse_topk
from elmo_core.head import XMCHead
from elmo_core.inference.topk import predict_topk


def rank_topk(
    encoder: torch.nn.Module,
    head: XMCHead,
    prepared,
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
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32), ids
    if priors is None:
        raise ValueError("fused ranking needs the priors of the rows (FusedScorer.priors)")
    k = min(int(k), head.num_labels)
    width = max(k, fusion.candidates)
    logits, ids = predict_topk(encoder, head, prepared, num_rows, width, batch_size, device)
    return fuse_topk(logits, ids, priors, fusion.scale, k)
