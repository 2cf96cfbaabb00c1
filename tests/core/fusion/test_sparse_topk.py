"""Row rankings of sparse matrices and the fusion's top k, against dense float64 sorts: value
descending, ties by the lower column (a stable sort of the negated row), -1 / 0 padding."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from elmo_core.fusion import fuse_topk, row_ranking, row_topk, sparse_topk, topk_product


def tied_matrix(seed: int, num_rows: int, num_cols: int, density: float) -> np.ndarray:
    """Values from a small set (many ties), some rows empty, some with few entries."""
    rng = np.random.default_rng(seed)
    values = rng.choice([0.25, 0.5, 0.75, 1.0], size=(num_rows, num_cols))
    dense = values * (rng.random((num_rows, num_cols)) < density)
    dense[::9] = 0.0
    dense[4, :] = 0.0
    dense[4, [7, 3]] = 0.5  # a row of two tied entries
    return dense


def dense_ranking(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((dense.shape[0], k), -1)
    values = np.zeros((dense.shape[0], k))
    for row, data in enumerate(dense):
        order = [c for c in np.argsort(-data, kind="stable") if data[c] != 0][:k]
        ids[row, : len(order)] = order
        values[row, : len(order)] = data[order]
    return ids, values


@pytest.mark.parametrize("k", [1, 3, 8, 50])
def test_row_ranking_sorts_by_value_then_column(k, monkeypatch):
    dense = tied_matrix(0, 40, 30, 0.3)
    expected_ids, expected_values = dense_ranking(dense, k)
    for block in (sparse_topk.RANKING_BLOCK, 16):  # one block; many blocks of a few rows
        monkeypatch.setattr(sparse_topk, "RANKING_BLOCK", block)
        ids, values = row_ranking(sp.csr_matrix(dense), k)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(values, expected_values)


def test_row_ranking_sums_duplicates_and_leaves_its_input_alone():
    matrix = sp.csr_matrix(
        (np.array([1.0, 2.0, 0.5]), np.array([3, 3, 1]), np.array([0, 3])), shape=(1, 5)
    )
    ids, values = row_ranking(matrix, 2)
    assert ids.tolist() == [[3, 1]] and values.tolist() == [[3.0, 0.5]]
    assert matrix.nnz == 3


def test_row_topk_keeps_the_ranked_entries():
    dense = tied_matrix(1, 25, 40, 0.4)
    kept = row_topk(sp.csr_matrix(dense), 4)
    ids, _ = dense_ranking(dense, 4)
    for row in range(dense.shape[0]):
        expected = sorted(c for c in ids[row] if c >= 0)
        assert kept[row].indices.tolist() == expected
        np.testing.assert_array_equal(kept[row].data, dense[row, expected])


def test_topk_product_keeps_the_k_largest_products():
    rng = np.random.default_rng(2)
    left = sp.csr_matrix(rng.random((12, 20)) * (rng.random((12, 20)) < 0.3), dtype=np.float32)
    right = sp.csr_matrix(rng.random((20, 35)) * (rng.random((20, 35)) < 0.3), dtype=np.float32)
    exact = left.toarray().astype(np.float64) @ right.toarray().astype(np.float64)
    found = topk_product(left, right, 5)
    for row in range(12):
        ids = found[row].indices
        positive = np.sort(exact[row][exact[row] > 0])[::-1]
        assert len(ids) == min(5, len(positive))
        # Random values: no ties, so the set is exact; float32 products, 1e-6 relative.
        assert set(ids) == set(np.argsort(-exact[row], kind="stable")[: len(ids)])
        np.testing.assert_allclose(found[row].data, exact[row, ids], rtol=1e-6)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_dense_product_has_the_bits_of_scipys_product(index_dtype):
    rng = np.random.default_rng(7)
    dense_left = rng.random((40, 300)) * (rng.random((40, 300)) < 0.2)
    dense_left[5] = 0.0  # an empty row
    dense_right = rng.normal(size=(300, 90)) * (rng.random((300, 90)) < 0.1)  # signs mixed
    left = sp.csr_matrix(dense_left, dtype=np.float32)
    right = sp.csr_matrix(dense_right, dtype=np.float32)
    for matrix in (left, right):
        matrix.indptr = matrix.indptr.astype(index_dtype)
        matrix.indices = matrix.indices.astype(index_dtype)
    got = sparse_topk.dense_product(left, right, 3, 31)
    expected = np.asarray((left[3:31] @ right).toarray(), dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == (28, 90)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    wide = left.astype(np.float64)  # other dtypes: scipy's product, cast to float32
    expected = np.asarray((wide @ right).toarray(), dtype=np.float32)
    assert np.array_equal(sparse_topk.dense_product(wide, right, 0, 40), expected)


def test_fuse_topk_with_ties_and_short_rows():
    rng = np.random.default_rng(3)
    num_rows, num_labels, width, k = 9, 30, 4, 6
    # Logits of 0 give probability 0.5, equal to the 0.5 prior values: ties across the sources.
    logits = rng.choice([0.0, 1.0, -1.0], size=(num_rows, width)).astype(np.float32)
    ids = np.stack([rng.choice(num_labels, width, replace=False) for _ in range(num_rows)])
    priors = sp.csr_matrix(tied_matrix(4, num_rows, num_labels, 0.1))
    scores, top = fuse_topk(logits, ids, priors, 1.5, k)
    dense = priors.toarray()
    for row in range(num_rows):
        dense[row, ids[row]] += 1.0 / (1.0 + np.exp(-logits[row].astype(np.float64)))
    expected_ids, expected_values = dense_ranking(dense, k)
    np.testing.assert_array_equal(top, expected_ids)
    np.testing.assert_array_equal(scores, (expected_values / 1.5).astype(np.float32))
    assert scores.dtype == np.float32 and top.dtype == np.int64
    assert (top == -1).any()  # some rows have fewer than k candidates: padded


def test_fuse_topk_in_blocks_on_workers_equals_one_block(monkeypatch):
    from elmo_core.fusion import fused

    rng = np.random.default_rng(4)
    num_rows, num_labels, width, k = 23, 40, 5, 7
    logits = rng.standard_normal((num_rows, width)).astype(np.float32)
    ids = np.stack([rng.choice(num_labels, width, replace=False) for _ in range(num_rows)])
    priors = sp.csr_matrix(tied_matrix(5, num_rows, num_labels, 0.2))
    whole = fuse_topk(logits, ids, priors, 2.0, k, workers=1)
    monkeypatch.setattr(fused, "FUSE_ROWS", 4)  # 6 blocks, the last one short
    for workers in (1, 2):
        scores, top = fuse_topk(logits, ids, priors, 2.0, k, workers=workers)
        np.testing.assert_array_equal(top, whole[1])
        np.testing.assert_array_equal(scores, whole[0])
    empty = fuse_topk(logits[:0], ids[:0], priors[:0], 2.0, k)
    assert empty[0].shape == (0, k) and empty[1].shape == (0, k)
