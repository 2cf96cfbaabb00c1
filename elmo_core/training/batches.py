"""The data order and the batches of a run: a pure function of the seed and the epoch, so a
resumed run replays exactly the batches it would have seen."""

from __future__ import annotations

import random

import numpy as np
import scipy.sparse as sp
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (dropout, initialisation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_order(seed: int, epoch: int, num_points: int) -> np.ndarray:
    """The shuffled order of the points in `epoch` (a pure function of seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_points)


def batch_pairs(labels: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive (batch row, label id) pairs of the points `rows`."""
    block = labels[rows]
    counts = np.diff(block.indptr)
    batch_rows = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    return torch.from_numpy(batch_rows), torch.from_numpy(block.indices.astype(np.int64))
