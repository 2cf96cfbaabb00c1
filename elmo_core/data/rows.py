"""The `empty_rows` policy: what to do with points that have no labels."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from elmo_core.data.dataset import XMCSplit
from elmo_core.errors import DatasetFormatError


class EmptyRowsWarning(UserWarning):
    """Some points have no labels; they were kept (`empty_rows="warn"`)."""


@dataclass
class LoadedSplit:
    """A split as a reader returns it, with where its rows came from (for error messages)."""

    split: XMCSplit
    labels_file: str
    first_row_line: int


def apply_empty_rows(splits: list[LoadedSplit], policy: str) -> list[XMCSplit]:
    """Apply `policy` to the points without labels of every split.

    "warn" keeps them and warns once with the counts, "keep" keeps them silently, "drop" removes
    them (texts, features and filter pairs follow; rows are renumbered), "error" raises
    DatasetFormatError at the first such line.
    """
    empty = [np.flatnonzero(np.diff(s.split.labels.indptr) == 0) for s in splits]
    if policy == "error":
        for loaded, rows in zip(splits, empty, strict=True):
            if rows.size:
                raise DatasetFormatError(
                    loaded.labels_file,
                    loaded.first_row_line + int(rows[0]),
                    f"point has no labels ({rows.size} such points in this file; "
                    "empty_rows='error')",
                )
    if policy == "warn" and any(rows.size for rows in empty):
        counts = ", ".join(
            f"{rows.size} in {loaded.labels_file}"
            for loaded, rows in zip(splits, empty, strict=True)
            if rows.size
        )
        warnings.warn(f"points with no labels kept: {counts}", EmptyRowsWarning, stacklevel=3)
    if policy == "drop":
        return [
            _drop_rows(s.split, rows) if rows.size else s.split
            for s, rows in zip(splits, empty, strict=True)
        ]
    return [s.split for s in splits]


def _drop_rows(split: XMCSplit, rows: np.ndarray) -> XMCSplit:
    keep = np.ones(split.num_points, dtype=bool)
    keep[rows] = False
    new_index = np.cumsum(keep) - 1
    pairs = split.filter_pairs
    pairs = pairs[keep[pairs[:, 0]]]
    pairs = np.stack([new_index[pairs[:, 0]], pairs[:, 1]], axis=1).astype(np.int64)
    texts = (
        None if split.texts is None else [t for t, k in zip(split.texts, keep, strict=True) if k]
    )
    features = None if split.features is None else split.features[keep]
    return XMCSplit(labels=split.labels[keep], texts=texts, features=features, filter_pairs=pairs)
