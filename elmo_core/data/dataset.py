"""The one in-memory representation of an XMC dataset, whatever format it was read from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class XMCSplit:
    """One split (train or test): the label matrix plus texts and/or sparse features.

    `labels` is an N x L float32 CSR matrix with sorted indices and no duplicates; `texts` (one per
    row) and `features` (N x F float32 CSR) are present when the format has them; `filter_pairs` is
    an (n, 2) int64 array of (row, label) pairs to ignore at evaluation, shape (0, 2) if none.
    """

    labels: sp.csr_matrix
    texts: list[str] | None = None
    features: sp.csr_matrix | None = None
    filter_pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    @property
    def num_points(self) -> int:
        """Number of points (rows) in this split."""
        return int(self.labels.shape[0])


@dataclass
class XMCDataset:
    """A loaded dataset: train split, optional test split, label texts (line i = label id i)."""

    name: str
    format: str
    num_labels: int
    train: XMCSplit
    test: XMCSplit | None
    label_texts: list[str] | None
