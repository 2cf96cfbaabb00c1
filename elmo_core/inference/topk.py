"""Batched top-k scoring: encoder -> head's chunked top-k, never B x L scores in memory."""

from __future__ import annotations

import numpy as np
import torch

from elmo_core.head import XMCHead


@torch.no_grad()
def predict_topk(
    encoder: torch.nn.Module,
    head: XMCHead,
    prepared,
    num_rows: int,
    k: int,
    batch_size: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits (float32) and label ids (int64) of the k best labels of every row, best first.

    `prepared` is the encoder's `featurize` output for the rows; `k` is capped at the label count.
    """
    k = min(int(k), head.num_labels)
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
