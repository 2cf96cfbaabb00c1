"""Which points a run trains on, selects its model on, and reports: split selection.

The validation slice is the last `validation_fraction` of the (possibly truncated) train split,
at most `max_validation_points` points: deterministic, and never the test split. The LF datasets'
points are in random order, so the slice is a fair sample of train.
"""

from __future__ import annotations

from dataclasses import dataclass

from elmo_core.config import TrainConfig
from elmo_core.data.dataset import XMCDataset, XMCSplit


@dataclass
class RunSplits:
    """The splits of one run: what it trains on, what selects its model, what it reports."""

    train: XMCSplit
    validation: XMCSplit | None
    test: XMCSplit | None


def validation_size(config: TrainConfig, num_train: int) -> int:
    """Points held out of train for validation: the configured fraction, capped; 0 when that
    would leave no point on either side."""
    held = min(
        round(num_train * config.data.validation_fraction), config.data.max_validation_points
    )
    return held if 0 < held < num_train else 0


def select_splits(config: TrainConfig, dataset: XMCDataset) -> RunSplits:
    """The train / validation / test splits of a run of `config` on `dataset`."""
    train = head_of(dataset.train, config.data.max_train_points)
    held = validation_size(config, train.num_points)
    validation = None
    if held:
        keep = train.num_points - held
        validation = slice_split(train, keep, train.num_points)
        train = slice_split(train, 0, keep)
    test = None if dataset.test is None else head_of(dataset.test, config.data.max_test_points)
    return RunSplits(train, validation, test)


def head_of(split: XMCSplit, limit: int | None) -> XMCSplit:
    """The first `limit` points of `split` (all of them when `limit` is None)."""
    if limit is None or limit >= split.num_points:
        return split
    return slice_split(split, 0, limit)


def slice_split(split: XMCSplit, start: int, stop: int) -> XMCSplit:
    """Points `start..stop` of `split`, with their filter pairs renumbered."""
    pairs = split.filter_pairs
    inside = (pairs[:, 0] >= start) & (pairs[:, 0] < stop)
    shifted = pairs[inside].copy()
    shifted[:, 0] -= start
    return XMCSplit(
        labels=split.labels[start:stop],
        texts=None if split.texts is None else split.texts[start:stop],
        features=None if split.features is None else split.features[start:stop],
        filter_pairs=shifted,
    )
