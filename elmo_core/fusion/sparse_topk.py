"""The `k` largest entries of every row of a CSR matrix, or of a product of two, without Python
loops over rows.

`row_ranking` sorts each row's best entries (value descending, then column ascending) into N x k
arrays; `row_topk` keeps them as a CSR matrix; `topk_product` takes the k largest per row of a
sparse product whose rows are nearly dense (text similarities), block of rows by block of rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.float_bits import serial_kernel

RANKING_BLOCK = 1 << 22
"""`row_ranking` pads at most this many entries at once (rows x the longest row of the block)."""
DENSE_BLOCK = 1 << 24
"""`topk_product` densifies at most this many product values at once (64 MiB of float32)."""


def row_ranking(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column ids (N x k int64) and values (N x k, the matrix's dtype) of each row's `k` largest
    stored entries, best first: value descending, then column ascending. Rows with fewer than k
    entries pad with id -1 and value 0.

    Rows go through in blocks padded to the block's longest row: a partition finds each row's
    k-th value, and only the entries at or above it (k, more on ties) are sorted.
    """
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    num_rows = matrix.shape[0]
    ids = np.full((num_rows, k), -1, dtype=np.int64)
    values = np.zeros((num_rows, k), dtype=matrix.dtype)
    lengths = np.diff(matrix.indptr)
    start = 0
    while start < num_rows:
        stop = _block_end(lengths, start, RANKING_BLOCK)
        _rank_block(matrix, start, stop, k, ids, values)
        start = stop
    return ids, values


def _block_end(lengths: np.ndarray, start: int, budget: int) -> int:
    """The end of the row block from `start` whose rows x longest row stays within `budget`
    (at least one row)."""
    longest = np.maximum.accumulate(np.maximum(lengths[start : start + budget], 1))
    fits = np.arange(1, len(longest) + 1) * longest <= budget
    return start + (len(fits) if fits.all() else max(1, int(np.argmin(fits))))


def _rank_block(
    matrix: sp.csr_matrix, start: int, stop: int, k: int, ids: np.ndarray, values: np.ndarray
) -> None:
    """Write rows [start, stop)'s ranking into `ids` and `values` (see `row_ranking`)."""
    lo, hi = matrix.indptr[start], matrix.indptr[stop]
    lengths = np.diff(matrix.indptr[start : stop + 1])
    width = int(lengths.max(initial=0))
    if width == 0:
        return
    rows = np.repeat(np.arange(stop - start), lengths)
    slots = np.arange(hi - lo) - np.repeat(matrix.indptr[start:stop] - lo, lengths)
    negated = np.full((stop - start, width), np.inf)
    negated[rows, slots] = -matrix.data[lo:hi].astype(np.float64)
    columns = np.full((stop - start, width), np.iinfo(np.int64).max)
    columns[rows, slots] = matrix.indices[lo:hi]
    candidates = np.isfinite(negated)
    if width > k:
        # The entries at or above each row's k-th largest value (ties included); the rest can't
        # be among the k best. (A row shorter than k has the padding as k-th: all its entries.)
        candidates &= negated <= np.partition(negated, k - 1, axis=1)[:, k - 1 : k]
    candidate_rows, candidate_slots = np.nonzero(candidates)
    keys = negated[candidate_rows, candidate_slots]
    cols = columns[candidate_rows, candidate_slots]
    order = np.lexsort((cols, keys, candidate_rows))
    candidate_rows, keys, cols = candidate_rows[order], keys[order], cols[order]
    first = np.searchsorted(candidate_rows, np.arange(stop - start))
    rank = np.arange(len(order)) - first[candidate_rows]
    keep = rank < k
    out_rows = candidate_rows[keep] + start
    ids[out_rows, rank[keep]] = cols[keep]
    values[out_rows, rank[keep]] = -keys[keep]


def row_topk(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """A CSR copy of `matrix` holding, per row, its `k` largest values (ties: lower column)."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    if np.diff(matrix.indptr).max(initial=0) <= k:
        return matrix
    ids, values = row_ranking(matrix, k)
    rows, ranks = np.nonzero(ids >= 0)
    out = sp.csr_matrix(
        (values[rows, ranks], (rows, ids[rows, ranks])), shape=matrix.shape, dtype=matrix.dtype
    )
    out.sort_indices()
    return out


def topk_product(left: sp.csr_matrix, right: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """`row_topk(left @ right, k)` without sorting the whole product: rows go through in blocks
    whose dense product holds at most `DENSE_BLOCK` values (similarity products are nearly dense),
    and each block keeps its top k per row with `torch.topk` (10-20x faster than
    `np.argpartition` here). Zero products are dropped; ties at the k-th value are broken
    arbitrarily. The output has sorted column indices."""
    num_rows, num_cols = left.shape[0], right.shape[1]
    k = min(int(k), num_cols)
    if k == 0 or num_rows == 0:
        return sp.csr_matrix((num_rows, num_cols), dtype=np.float32)
    block = max(1, DENSE_BLOCK // max(num_cols, 1))
    rows, cols, vals = [], [], []
    for start in range(0, num_rows, block):
        dense = dense_product(left, right, start, min(start + block, num_rows))
        top_values, top_ids = torch.topk(torch.from_numpy(dense), k, dim=1)
        values, top = top_values.numpy(), top_ids.numpy()
        keep = values != 0
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(top[keep])
        vals.append(values[keep])
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(num_rows, num_cols),
        dtype=np.float32,
    )
    out.sort_indices()
    return out


def dense_product(left: sp.csr_matrix, right: sp.csr_matrix, start: int, stop: int) -> np.ndarray:
    """`(left[start:stop] @ right).toarray()` as float32. For float32 operands, one pass of
    `_add_dense_rows` (the products and sums of scipy's CSR product, in its order, so the same
    bits) straight into the dense block: scipy's product first counts each row's entries, then
    builds a CSR matrix that `toarray` spreads out again."""
    if left.dtype != np.float32 or right.dtype != np.float32:
        return np.asarray((left[start:stop] @ right).toarray(), dtype=np.float32)
    left, right = sp.csr_matrix(left), sp.csr_matrix(right)
    dense = np.zeros((stop - start, right.shape[1]), dtype=np.float32)
    _add_dense_rows(
        left.indptr, left.indices, left.data, right.indptr, right.indices, right.data, start, dense
    )
    return dense


@serial_kernel
def _add_dense_rows(
    left_indptr: np.ndarray,
    left_indices: np.ndarray,
    left_data: np.ndarray,
    right_indptr: np.ndarray,
    right_indices: np.ndarray,
    right_data: np.ndarray,
    start: int,
    dense: np.ndarray,
) -> None:
    """`dense[i] += left[start + i] @ right` for every row i of `dense` (CSR arrays; for each
    stored entry of the left row in order, the right row it names in order, as scipy's
    `csr_matmat` sums)."""
    for i in range(dense.shape[0]):
        row = dense[i]
        for p in range(left_indptr[start + i], left_indptr[start + i + 1]):
            feature = left_indices[p]
            weight = left_data[p]
            for q in range(right_indptr[feature], right_indptr[feature + 1]):
                row[right_indices[q]] += weight * right_data[q]


def topk_matrix(values: np.ndarray, ids: np.ndarray, num_cols: int) -> sp.csr_matrix:
    """The Q x `num_cols` CSR matrix of Q x k top-k arrays (`values` float32, `ids` their columns),
    zero values dropped, column indices sorted."""
    keep = values != 0
    found = sp.csr_matrix(
        (values[keep], ids[keep], np.concatenate([[0], np.cumsum(keep.sum(axis=1))])),
        shape=(values.shape[0], num_cols),
        dtype=np.float32,
    )
    found.sort_indices()
    return found
