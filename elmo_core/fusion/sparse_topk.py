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


DENSE_BLOCK = 1 << 24


def topk_product(left: sp.csr_matrix, right: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """`row_topk(left @ right, k)` without sorting the whole product: rows go through in blocks
    whose dense product holds at most 2^24 values (similarity products are nearly dense), and each
    block keeps its top k per row by partial sort. Ties at the k-th value are broken arbitrarily."""
    num_rows, num_cols = left.shape[0], right.shape[1]
    k = min(int(k), num_cols)
    block = max(1, DENSE_BLOCK // max(num_cols, 1))
    rows, cols, vals = [], [], []
    for start in range(0, num_rows, block):
        dense = (left[start : start + block] @ right).toarray()
        top = np.argpartition(-dense, k - 1, axis=1)[:, :k] if k < num_cols else None
        if top is None:
            top = np.broadcast_to(np.arange(num_cols), dense.shape)
        values = np.take_along_axis(dense, top, axis=1)
        keep = values != 0
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(top[keep])
        vals.append(values[keep])
    if not rows:
        return sp.csr_matrix((num_rows, num_cols), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(num_rows, num_cols),
        dtype=np.float32,
    )
