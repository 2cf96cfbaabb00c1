"""Metrics vs napkinXC's `napkinxc.metrics` (oracle) on random data, and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from napkinxc import metrics as nxc

from elmo_core.metrics import (
    evaluate,
    evaluate_ranking,
    evaluate_rankings,
    jain_propensities,
    prepare_truth,
    remove_filtered,
)

TOL = 1e-6  # percentage points; both sides compute in float64


def _random_problem(seed: int, rows: int = 300, labels: int = 40, width: int = 8):
    """Random truth (some rows empty, many with fewer than 5 labels) and ranked predictions."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 7, size=rows)
    truth = sp.lil_matrix((rows, labels))
    for i, size in enumerate(sizes):
        truth[i, rng.choice(labels, size=size, replace=False)] = 1.0
    truth = truth.tocsr()
    topk = np.stack([rng.choice(labels, size=width, replace=False) for _ in range(rows)])
    short = rng.random(rows) < 0.2  # some rows predict fewer labels: -1 slots at the end
    topk[short, rng.integers(1, width) :] = -1
    train = sp.random(500, labels, density=0.08, format="csr", random_state=seed)
    train.data[:] = 1.0
    return truth, topk, train


def _lists(topk: np.ndarray) -> list[list[int]]:
    return [[int(x) for x in row if x >= 0] for row in topk]


@pytest.mark.parametrize(("a", "b"), [(0.55, 1.5), (0.6, 2.6), (0.5, 0.4)])
def test_propensities_match_napkinxc(a: float, b: float) -> None:
    _, _, train = _random_problem(0)
    ours = jain_propensities(train, a=a, b=b)
    np.testing.assert_allclose(ours, nxc.Jain_et_al_propensity(train, A=a, B=b), rtol=1e-12)
    assert ours.shape == (train.shape[1],) and np.all((ours > 0) & (ours < 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_match_napkinxc_on_random_data(seed: int) -> None:
    truth, topk, train = _random_problem(seed)
    propensities = jain_propensities(train)
    ks = (1, 2, 3, 5, 8)
    ours = evaluate(topk, truth, ks=ks, propensities=propensities)
    preds = _lists(topk)
    oracle = {
        "P": nxc.precision_at_k(truth, preds, k=8),
        "nDCG": nxc.ndcg_at_k(truth, preds, k=8),
        "R": nxc.recall_at_k(truth, preds, k=8),
        "PSP": nxc.psprecision_at_k(truth, preds, 1.0 / propensities, k=8),
    }
    for name, values in oracle.items():
        for k in ks:
            assert ours[f"{name}@{k}"] == pytest.approx(100.0 * values[k - 1], abs=TOL), (name, k)


def test_filtering_matches_napkinxc_on_independently_filtered_data() -> None:
    truth, topk, train = _random_problem(4, width=12)
    rng = np.random.default_rng(5)
    # filter pairs: some predicted pairs, some true pairs, some irrelevant ones
    rows = rng.integers(0, truth.shape[0], size=400)
    pairs = np.stack([rows, np.where(rng.random(400) < 0.7, topk[rows, 0], 3)], axis=1)
    pairs = pairs[pairs[:, 1] >= 0]
    coo = truth.tocoo()
    pairs = np.concatenate([pairs, np.stack([coo.row[:50], coo.col[:50]], axis=1)])
    banned = {(int(r), int(c)) for r, c in pairs}
    k = 5
    preds = [[p for p in row if (i, p) not in banned][:k] for i, row in enumerate(_lists(topk))]
    kept = [(r, c) for r, c in zip(coo.row, coo.col, strict=True) if (r, c) not in banned]
    filtered_truth = sp.csr_matrix(
        (np.ones(len(kept)), ([r for r, _ in kept], [c for _, c in kept])), shape=truth.shape
    )
    propensities = jain_propensities(train)
    ours = evaluate(topk, truth, ks=(1, 3, 5), propensities=propensities, filter_pairs=pairs)
    oracle = {
        "P": nxc.precision_at_k(filtered_truth, preds, k=k),
        "nDCG": nxc.ndcg_at_k(filtered_truth, preds, k=k),
        "R": nxc.recall_at_k(filtered_truth, preds, k=k),
        "PSP": nxc.psprecision_at_k(filtered_truth, preds, 1.0 / propensities, k=k),
    }
    for name, values in oracle.items():
        for kk in (1, 3, 5):
            assert ours[f"{name}@{kk}"] == pytest.approx(100.0 * values[kk - 1], abs=TOL)
    unfiltered = evaluate(topk, truth, ks=(1,))
    assert unfiltered["P@1"] != pytest.approx(ours["P@1"])  # filtering changed the result


def test_hand_computed_small_case() -> None:
    truth = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    topk = np.array([[2, 1, 0], [0, 1, 3], [0, 1, 2]])
    m = evaluate(topk, truth, ks=(1, 3))
    assert m["P@1"] == pytest.approx(100 / 3)  # row 0 hits at rank 1
    assert m["P@3"] == pytest.approx(100 * (2 / 3 + 1 / 3) / 3)
    assert m["R@1"] == pytest.approx(100 * (1 / 2) / 3)
    assert m["R@3"] == pytest.approx(100 * (1 + 1) / 3)  # the empty row counts as 0
    row0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    row1 = (1 / math.log2(3)) / 1.0  # one true label: the ideal DCG is 1
    assert m["nDCG@3"] == pytest.approx(100 * (row0 + row1) / 3)
    assert m["nDCG@1"] == pytest.approx(100 / 3)
    assert set(m) == {"P@1", "P@3", "nDCG@1", "nDCG@3", "R@1", "R@3"}


def test_hand_computed_psp_is_a_ratio_of_sums() -> None:
    truth = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float32))
    propensities = np.array([0.5, 0.25, 0.1])  # inverse: 2, 4, 10
    topk = np.array([[0, 2], [1, 0]])
    m = evaluate(topk, truth, ks=(1, 2), propensities=propensities)
    # @1: gains 2 (row 0) + 0 (row 1); best 4 + 10
    assert m["PSP@1"] == pytest.approx(100 * 2 / 14)
    # @2: gains (2)/2 + 0; best (4 + 2)/2 + 10/2
    assert m["PSP@2"] == pytest.approx(100 * 1 / 8)


def test_hand_computed_filtering_closes_gaps_before_top_k() -> None:
    truth = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=np.float32))
    topk = np.array([[2, 1, 0, 3], [0, 1, 3, 2]])
    pairs = np.array([[0, 2], [1, 0]])  # (0, 2) is also a true pair: removed from the truth
    m = evaluate(topk, truth, ks=(1, 2), filter_pairs=pairs)
    # row 0 -> predictions [1, 0], truth {0}; row 1 -> predictions [1, 3], truth {1}
    assert m["P@1"] == pytest.approx(100 * (0 + 1) / 2)
    assert m["P@2"] == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)
    assert m["R@2"] == pytest.approx(100.0)
    assert m["nDCG@2"] == pytest.approx(100 * (1 / math.log2(3) + 1) / 2)


def test_remove_filtered_ids_and_scores() -> None:
    ids = np.array([[5, 3, 9, -1], [1, 2, 3, 4]])
    scores = np.array([[0.9, 0.8, 0.7, 0.0], [0.4, 0.3, 0.2, 0.1]])
    pairs = np.array([[0, 3], [1, 1], [1, 4], [7, 7]])
    kept, kept_scores = remove_filtered(ids, scores, pairs, k=3)
    np.testing.assert_array_equal(kept, [[5, 9, -1], [2, 3, -1]])
    np.testing.assert_array_equal(
        kept_scores, np.array([[0.9, 0.7, -np.inf], [0.3, 0.2, -np.inf]], dtype=np.float32)
    )
    padded, none_scores = remove_filtered(ids[:, :2], None, None, k=4)
    np.testing.assert_array_equal(padded, [[5, 3, -1, -1], [1, 2, -1, -1]])
    assert none_scores is None


def test_invalid_predictions_raise() -> None:
    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="rows"):
        evaluate(np.zeros((2, 2), dtype=np.int64), truth)
    with pytest.raises(ValueError, match="repeats"):
        evaluate(np.array([[0, 0], [1, 2], [2, 1]]), truth)
    with pytest.raises(ValueError, match=">= number of labels"):
        evaluate(np.array([[0, 3], [1, 2], [2, 1]]), truth)
    with pytest.raises(ValueError, match="propensities"):
        evaluate(np.array([[0], [1], [2]]), truth, propensities=np.ones(2))


def test_a_prepared_truth_scores_many_rankings_as_evaluate_does() -> None:
    truth, topk, train = _random_problem(4)
    propensities = jain_propensities(train)
    pairs = np.array([[0, int(topk[0, 0])], [5, int(topk[5, 1])], [7, 3]])
    prepared = prepare_truth(truth, 5, propensities, pairs)
    rng = np.random.default_rng(4)
    for _ in range(3):
        ranking = rng.permuted(topk, axis=1)
        expected = evaluate(ranking, truth, ks=(1, 3, 5), propensities=propensities,
                            filter_pairs=pairs)  # fmt: skip
        assert evaluate_ranking(ranking, prepared, ks=(1, 3, 5)) == expected
    rankings = np.stack([rng.permuted(topk, axis=1) for _ in range(4)])
    each = [evaluate_ranking(ranking, prepared, ks=(1, 3, 5)) for ranking in rankings]
    assert evaluate_rankings(rankings, prepared, ks=(1, 3, 5)) == each  # the same values
    assert "PSP@1" not in evaluate_ranking(topk, prepare_truth(truth, 3), ks=(1, 3))
    with pytest.raises(ValueError, match="3-D"):
        evaluate_rankings(topk, prepared)
    with pytest.raises(ValueError, match="beyond the depth 5"):
        evaluate_ranking(topk, prepared, ks=(1, 8))
