"""Keep only the `k` largest entries of every row of a CSR matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def row_topk(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """A CSR copy of `matrix` holding, per row, its `k` largest values (ties: lower column)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sum_duplicates()
    lengths = np.diff(matrix.indptr)
    if lengths.max(initial=0) <= k:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    keep = order[rank < k]
    return sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )
