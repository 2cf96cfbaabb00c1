"""The priors' similarity search: the three engines (CPU, SpMM, posting lists) against a float64
dense reference, the parallel map against the sequential one, the posting-list engine's batching
and determinism, and the cost plan's decisions.

Tolerance: the engines accumulate float32 products of unit-norm rows (cosines in [0, 1]), so a
value may differ from the float64 reference by a few float32 ulps per term: ATOL = 1e-5 bounds it
for these sizes. A tie at the k-th value may keep a different row of the same value, so the top k
are compared as sets, up to that.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from elmo_core.fusion.posting_search import (
    BYTES_PER_PRODUCT,
    posting_topk,
    product_batches,
    query_products,
)
from elmo_core.fusion.similarity import (
    MIN_KEPT_WEIGHT,
    SearchOptions,
    SimilarityIndex,
    cpu_topk,
    keep_columns,
    largest_cap,
    plan_search,
    search_cost,
    torch_topk,
)
from elmo_core.fusion.sparse_topk import topk_matrix

ATOL = 1e-5


def tfidf_rows(seed: int, num_rows: int, num_features: int, nnz: int) -> sp.csr_matrix:
    """L2-normalised non-negative rows whose features follow a Zipf law (common features make
    many products non-zero), some rows empty, some values repeated (ties)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_features + 1)
    dense = np.zeros((num_rows, num_features))
    for row in range(num_rows):
        if row % 7 == 3:
            continue  # an empty row
        features = rng.choice(num_features, nnz, replace=False, p=weights / weights.sum())
        dense[row, features] = rng.choice([0.5, 1.0, 1.5, 2.0], nnz)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return sp.csr_matrix((dense / np.where(norms > 0, norms, 1.0)).astype(np.float32))


def assert_topk(found: sp.csr_matrix, reference: np.ndarray, k: int) -> None:
    """`found`'s rows hold the k largest positive entries of `reference`'s rows (float64), up to
    ties at the k-th value, with their values within ATOL."""
    assert found.shape == reference.shape
    for row in range(reference.shape[0]):
        ids = found.indices[found.indptr[row] : found.indptr[row + 1]]
        values = found.data[found.indptr[row] : found.indptr[row + 1]]
        exact = reference[row]
        positive = np.sort(exact[exact > 0])[::-1]
        assert len(ids) == min(k, len(positive)), row
        np.testing.assert_allclose(values, exact[ids], atol=ATOL)
        if len(ids) == 0:
            continue
        kth = positive[len(ids) - 1]
        assert set(np.flatnonzero(exact > kth + ATOL)) <= set(ids.tolist()), row
        assert (exact[ids] >= kth - ATOL).all(), row


@pytest.fixture(scope="module")
def index_rows() -> sp.csr_matrix:
    return tfidf_rows(0, 120, 60, 8)


@pytest.fixture(scope="module")
def queries() -> sp.csr_matrix:
    return tfidf_rows(1, 30, 60, 6)


def reference(queries: sp.csr_matrix, rows: sp.csr_matrix) -> np.ndarray:
    return queries.toarray().astype(np.float64) @ rows.toarray().astype(np.float64).T


def test_cpu_engine_keeps_the_k_largest_cosines(index_rows, queries):
    found = cpu_topk(queries, sp.csr_matrix(index_rows.T), 7, workers=1)
    assert_topk(found, reference(queries, index_rows), 7)
    assert found.has_sorted_indices


def test_cpu_engine_is_the_same_for_any_worker_count_and_chunk(index_rows, queries):
    # Start torch's CPU threads first: forked workers must not wait on them (they would hang).
    torch.topk(torch.rand(64, 4096), 5, dim=1)
    columns = sp.csr_matrix(index_rows.T)
    sequential = cpu_topk(queries, columns, 7, workers=1)
    for workers, chunk in [(2, 4), (2, 1), (1, 5)]:
        parallel = cpu_topk(queries, columns, 7, workers=workers, chunk=chunk)
        assert (parallel != sequential).nnz == 0
        np.testing.assert_array_equal(parallel.indptr, sequential.indptr)


@pytest.mark.parametrize("memory_bytes", [1, 1 << 20])
def test_torch_engine_on_the_cpu_matches_the_reference(index_rows, queries, memory_bytes):
    # memory_bytes=1: one query per step; 1 MiB: every query in one step.
    found = torch_topk(index_rows, queries, 7, torch.device("cpu"), memory_bytes)
    assert_topk(found, reference(queries, index_rows), 7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_engine_on_the_gpu_matches_the_reference(index_rows, queries):
    found = torch_topk(index_rows, queries, 7, torch.device("cuda"), 4096)
    assert_topk(found, reference(queries, index_rows), 7)


def test_k_beyond_the_index_keeps_every_positive_row(index_rows, queries):
    small = index_rows[:5]
    for found in (
        cpu_topk(queries, sp.csr_matrix(small.T), 50, workers=1),
        torch_topk(small, queries, 50, torch.device("cpu")),
    ):
        assert_topk(found, reference(queries, small), 5)


def test_search_without_budget_scores_every_feature_and_logs_its_plan(index_rows, queries):
    lines: list[str] = []
    options = SearchOptions(workers=2, log=lines.append)
    found = SimilarityIndex(index_rows).search(queries, 7, options, "test prior")
    assert_topk(found, reference(queries, index_rows), 7)
    assert len(lines) == 1 and lines[0].startswith("test prior: ") and "every feature" in lines[0]


def test_a_cpu_device_runs_the_cpu_engine(index_rows, queries):
    index = SimilarityIndex(index_rows)
    on_cpu = index.search(queries, 7, SearchOptions(device=torch.device("cpu")), "p")
    default = index.search(queries, 7, SearchOptions(), "p")
    assert (on_cpu != default).nnz == 0


def test_over_budget_the_search_drops_the_commonest_features(index_rows, queries):
    index = SimilarityIndex(index_rows)
    df = index.document_frequencies
    cost = search_cost(df, index.shape[0], queries, engine="cpu", workers=1)
    budget = (cost.fixed_ops + 0.9 * cost.costs.sum()) / cost.rate  # ~10% must go
    plan = plan_search(cost, df, queries, budget_s=budget, title="p")
    assert plan.max_df is not None and 0 < plan.max_df < df.max()
    assert plan.estimated_s <= budget < cost.seconds()
    assert "dropping the" in plan.message
    # The largest cap that fits: one more distinct frequency would not.
    next_df = df[df > plan.max_df].min()
    assert cost.seconds(int(next_df)) > budget
    lines: list[str] = []
    options = SearchOptions(workers=1, log=lines.append)
    capped = index.plan_cap(queries, options, texts=queries.shape[0], budget_s=budget, name="p")
    assert (capped.max_df, capped.estimated_s) == (plan.max_df, plan.estimated_s)
    assert index.max_df == plan.max_df
    assert lines == [capped.message] and lines[0].startswith("p: cap for 30 texts x 120 rows on ")
    assert lines[0].endswith(plan.message.split(": ", 1)[1])
    found = index.search(queries, 7, options, "p")
    kept = df <= plan.max_df
    assert_topk(found, reference(keep_columns(queries, kept), index_rows), 7)
    assert lines[1].startswith("p: 26 texts x 120 rows on 1 CPU worker: ")
    assert lines[1].endswith(f"features in <= {plan.max_df:,} rows")


def test_the_cap_scales_with_the_texts_it_is_planned_for(index_rows, queries):
    index = SimilarityIndex(index_rows)
    cost = search_cost(index.document_frequencies, 120, queries, engine="cpu", workers=1)
    budget = cost.seconds()  # exactly the sample's full cost
    options = SearchOptions(workers=1)
    assert index.plan_cap(queries, options, texts=30, budget_s=budget, name="p").max_df is None
    assert index.max_df is None
    # A tenth more texts for the same budget: the commonest features must go.
    plan = index.plan_cap(queries, options, texts=33, budget_s=budget, name="p")
    assert plan.max_df is not None and 0 < plan.max_df < index.document_frequencies.max()
    assert index.max_df == plan.max_df


def test_the_same_cap_applies_to_every_later_search(index_rows, queries):
    index = SimilarityIndex(index_rows)
    cost = search_cost(index.document_frequencies, 120, queries, engine="cpu", workers=1)
    budget = (cost.fixed_ops + 0.8 * cost.costs.sum()) / cost.rate
    index.plan_cap(queries, SearchOptions(workers=1), texts=30, budget_s=budget, name="p")
    assert index.max_df is not None and index.max_df > 0
    kept = index.document_frequencies <= index.max_df
    expected = reference(keep_columns(queries, kept), index_rows)
    # One text at a time (a served request) ranks as the whole batch (an evaluation) does.
    batch = index.search(queries, 7, SearchOptions(workers=1), "p")
    assert_topk(batch, expected, 7)
    for row in (0, 5, 29):
        single = index.search(queries[row], 7, SearchOptions(workers=1), "p")
        assert (single != batch[row]).nnz == 0
    on_torch = index.search(queries, 7, SearchOptions(device=torch.device("cpu")), "p")
    assert_topk(on_torch, expected, 7)


def test_a_search_that_cannot_keep_enough_weight_is_off(index_rows, queries):
    index = SimilarityIndex(index_rows)
    lines: list[str] = []
    options = SearchOptions(workers=1, log=lines.append)
    plan = index.plan_cap(queries, options, texts=30, budget_s=1e-12, name="p")
    assert plan.max_df == 0 and index.max_df == 0
    found = index.search(queries, 7, options, "p")
    assert found.shape == (30, 120) and found.nnz == 0
    assert "OFF" in lines[0] and f"{MIN_KEPT_WEIGHT:.0%}" in lines[0]
    assert "off" in lines[1]


def test_the_plan_depends_on_the_data_alone(index_rows, queries):
    index = SimilarityIndex(index_rows)
    df = index.document_frequencies
    plans = {
        plan_search(
            search_cost(df, 120, queries, engine="cpu", workers=1),
            df,
            queries,
            budget_s=1e-4,
            title="p",
        )
        for _ in range(3)
    }
    assert len(plans) == 1


def test_the_device_cost_counts_every_stored_value_and_the_upload(index_rows, queries):
    index = SimilarityIndex(index_rows)
    df = index.document_frequencies
    device = search_cost(df, 120, queries, engine="spmm", workers=1)
    cpu = search_cost(df, 120, queries, engine="cpu", workers=1)
    active = np.count_nonzero(np.diff(queries.indptr))
    assert device.costs.sum() == active * index_rows.nnz
    assert cpu.costs.sum() == df[queries.indices].sum()
    assert device.fixed_s > 0 and cpu.fixed_s == 0


def test_one_text_is_cheaper_on_the_cpu_than_the_index_upload():
    # An index of 1M rows x 60 features (100K features in 600 rows each).
    df = np.full(100_000, 600, dtype=np.int64)
    one = sp.csr_matrix(np.ones((1, 100_000), dtype=np.float32) * (np.arange(100_000) < 50))
    many = sp.vstack([one] * 10_000, format="csr")
    for queries, cpu_wins in [(one, True), (many, False)]:
        cpu = search_cost(df, 1_000_000, queries, engine="cpu", workers=1)
        device = search_cost(df, 1_000_000, queries, engine="spmm", workers=1)
        assert (cpu.seconds() < device.seconds()) == cpu_wins


def test_largest_cap_keeps_whole_frequency_groups():
    frequencies = np.array([3, 1, 2, 2, 5])
    costs = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    assert largest_cap(frequencies, costs, 0.5) == 0
    assert largest_cap(frequencies, costs, 4.0) == 1  # both 2s cost 4 more
    assert largest_cap(frequencies, costs, 5.0) == 2
    assert largest_cap(frequencies, costs, 100.0) == 5
    assert largest_cap(frequencies, costs, -1.0) == 0


# The posting-list engine (elmo_core.fusion.posting_search).


def posting_matrix(rows, queries, k, device=torch.device("cpu"), memory_bytes=1 << 30):
    values, ids = posting_topk(sp.csr_matrix(rows.T), queries, k, device, memory_bytes)
    return topk_matrix(values, ids, rows.shape[0])


@pytest.mark.parametrize("memory_bytes", [1, 40 * BYTES_PER_PRODUCT, 1 << 30])
def test_posting_engine_matches_the_reference_in_any_batching(index_rows, queries, memory_bytes):
    # 1 byte: one query per batch; 40 products: a few queries; 1 GiB: all in one batch.
    found = posting_matrix(index_rows, queries, 7, memory_bytes=memory_bytes)
    assert_topk(found, reference(queries, index_rows), 7)


def test_posting_engine_ranks_ties_by_the_lower_row_and_repeats_itself(index_rows, queries):
    values, ids = posting_topk(sp.csr_matrix(index_rows.T), queries, 7, torch.device("cpu"), 1)
    again = posting_topk(sp.csr_matrix(index_rows.T), queries, 7, torch.device("cpu"), 1 << 30)
    np.testing.assert_array_equal(values, again[0])
    np.testing.assert_array_equal(ids, again[1])
    for row_values, row_ids in zip(values, ids, strict=True):
        kept = row_values > 0
        order = np.lexsort((row_ids[kept], -row_values[kept]))
        np.testing.assert_array_equal(order, np.arange(int(kept.sum())))


def test_posting_engine_with_a_cap_k_beyond_the_index_and_queries_without_products(
    index_rows, queries
):
    index = SimilarityIndex(index_rows, max_df=int(np.median(index_rows.getnnz(axis=0))))
    capped = keep_columns(queries, index.kept)
    values, ids = posting_topk(index.columns, capped, 500, torch.device("cpu"), 1 << 20)
    assert values.shape == (30, 120)  # k is cut to the index's rows
    found = topk_matrix(values, ids, 120)
    assert_topk(found, reference(capped, index_rows), 120)
    nothing = sp.csr_matrix((3, 60), dtype=np.float32)  # no features: no products at all
    empty_values, _ = posting_topk(index.columns, nothing, 5, torch.device("cpu"), 1 << 20)
    assert empty_values.shape == (3, 5) and not empty_values.any()


def test_batches_cover_every_query_within_the_budget():
    products = np.array([5, 0, 7, 30, 2, 2, 9])
    batches = product_batches(products, 10)
    assert batches[0][0] == 0 and batches[-1][1] == len(products)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(batches))
    for start, stop in batches:
        assert products[start:stop].sum() <= 10 or stop - start == 1
    assert (3, 4) in batches  # the query over the budget goes alone


def test_query_products_are_the_posting_list_lengths_of_its_features(index_rows, queries):
    df = np.diff(sp.csr_matrix(index_rows.T).indptr)
    expected = [df[queries[row].indices].sum() for row in range(queries.shape[0])]
    np.testing.assert_array_equal(query_products(queries, df), expected)


def test_the_posting_cost_counts_the_products_and_the_upload(index_rows, queries):
    df = SimilarityIndex(index_rows).document_frequencies
    cost = search_cost(df, 120, queries, engine="posting", workers=1)
    assert cost.costs.sum() == df[queries.indices].sum()
    assert cost.fixed_ops == 0 and cost.fixed_s > 0
    with pytest.raises(ValueError, match="unknown search engine 'dense'"):
        search_cost(df, 120, queries, engine="dense", workers=1)


def test_on_a_device_the_plan_keeps_the_most_features_any_engine_affords(index_rows, queries):
    index = SimilarityIndex(index_rows)
    df = index.document_frequencies
    budget = 1e-6
    plans = [
        plan_search(search_cost(df, 120, queries, engine=e, workers=1), df, queries, budget, "p")
        for e in ("spmm", "posting")
    ]
    lines: list[str] = []
    # A device other than the CPU allows every engine; planning touches no device memory.
    options = SearchOptions(device=torch.device("meta"), workers=1, log=lines.append)
    plan = index.plan_cap(queries, options, texts=30, budget_s=budget, name="p")
    caps = [np.inf if p.max_df is None else p.max_df for p in plans]
    assert (np.inf if plan.max_df is None else plan.max_df) == max(caps)
    assert index.max_df == plan.max_df
    assert len(lines) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_posting_engine_on_the_gpu_matches_the_reference(index_rows, queries):
    for memory_bytes in (1, 1 << 30):
        found = posting_matrix(index_rows, queries, 7, torch.device("cuda"), memory_bytes)
        assert_topk(found, reference(queries, index_rows), 7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_capped_search_on_the_gpu_matches_the_reference(index_rows, queries):
    index = SimilarityIndex(index_rows, max_df=int(np.median(index_rows.getnnz(axis=0))))
    lines: list[str] = []
    options = SearchOptions(device=torch.device("cuda"), log=lines.append)
    found = index.search(queries, 7, options, "p")
    assert_topk(found, reference(keep_columns(queries, index.kept), index_rows), 7)
    assert "on the GPU" in lines[0]
