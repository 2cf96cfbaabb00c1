"""The data order and the batches of a run: a pure function of the seed and the epoch, so a
resumed run replays exactly the batches it would have seen."""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
import torch

T = TypeVar("T")
BUCKET_WINDOW = 64
"""Batches whose points are sorted by length together (length-bucketed batching)."""


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (dropout, initialisation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_order(seed: int, epoch: int, num_points: int) -> np.ndarray:
    """The shuffled order of the points in `epoch` (a pure function of seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_points)


def epoch_batches(
    seed: int, epoch: int, num_points: int, batch_size: int, lengths: np.ndarray | None = None
) -> list[np.ndarray]:
    """The batches of `epoch` (point ids), a pure function of seed and epoch.

    Without `lengths`, the shuffled order cut into batches. With `lengths` (tokens per point),
    each window of `BUCKET_WINDOW` batches of the shuffled order is sorted by length before it is
    cut, and the batches are then shuffled: a batch holds texts of similar length, so it pads
    little, while the epoch still visits the points in a random order. Either way every point is
    in exactly one batch and only the last batch may be short.
    """
    order = epoch_order(seed, epoch, num_points)
    if lengths is not None:
        window = batch_size * BUCKET_WINDOW
        starts = range(0, num_points, window)
        order = np.concatenate(
            [
                order[s : s + window][np.argsort(lengths[order[s : s + window]], kind="stable")]
                for s in starts
            ]
        )
    batches = [order[s : s + batch_size] for s in range(0, num_points, batch_size)]
    if lengths is None or len(batches) < 2:
        return batches
    full = len(batches) - (1 if len(batches[-1]) < batch_size else 0)
    shuffle = np.random.default_rng([seed, epoch, 1]).permutation(full)
    return [batches[i] for i in shuffle] + batches[full:]


def batch_pairs(labels: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive (batch row, label id) pairs of the points `rows`."""
    block = labels[rows]
    counts = np.diff(block.indptr)
    batch_rows = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    return torch.from_numpy(batch_rows), torch.from_numpy(block.indices.astype(np.int64))


@dataclass
class HostBatch:
    """One training step's inputs in (pinned) host memory: the encoder's batch and the positive
    (batch row, label id) pairs."""

    rows: np.ndarray
    inputs: dict[str, torch.Tensor]
    pair_rows: torch.Tensor
    pair_cols: torch.Tensor


@dataclass(frozen=True)
class StepInputs:
    """One step's inputs on the training device and how it runs: the encoder's batch, the
    positive (batch row, label id) pairs, the head's and the encoder's learning rates, and
    whether the step reports its loss and times its phases."""

    batch: dict[str, torch.Tensor]
    pair_rows: torch.Tensor
    pair_cols: torch.Tensor
    head_lr: float
    encoder_lr: float
    logging_step: bool
    timed: bool


def prefetch(
    make: Callable[[int], T], steps: Iterable[int], depth: int
) -> Generator[T, None, None]:
    """`make(step)` for each step, in order, computed by a background thread up to `depth` steps
    ahead of the consumer (the GPU trainer), so batch preparation overlaps the GPU's work.
    An exception in `make` is raised at its step; closing the iterator stops the thread."""
    remaining = iter(steps)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="elmo-batches") as pool:
        pending: deque[Future[T]] = deque(
            pool.submit(make, step) for step in itertools.islice(remaining, max(1, depth))
        )
        try:
            while pending:
                result = pending.popleft().result()
                step = next(remaining, None)
                if step is not None:
                    pending.append(pool.submit(make, step))
                yield result
        finally:
            for future in pending:
                future.cancel()
