"""Ranking metrics for XMC: P@k, nDCG@k, PSP@k, R@k from top-k predictions, with filter pairs.

All values are percentages (0-100), averaged over every row of the ground truth, rows without
labels included. Conventions (those of the Extreme Classification Repository's evaluation code and
of napkinXC's `napkinxc.metrics`, which the tests use as the oracle; napkinXC returns fractions
for ranks 1..k, we return percentages for the requested ks):

- P@k = mean over rows of |top-k ∩ truth| / k (a row with fewer than k predictions still divides
  by k; -1 marks an empty slot and never hits).
- R@k = mean over rows of |top-k ∩ truth| / |truth|; a row without labels counts as 0.
- nDCG@k = DCG@k / IDCG@k with DCG@k = sum_{hits at rank r <= k} 1 / log2(r + 1) and IDCG@k the
  DCG of min(k, |truth|) hits; a row without labels counts as 0.
- PSP@k = sum over rows of sum_{hits in top-k} 1 / p_l, divided by the same sum for the best
  possible top-k (the k true labels of largest 1 / p_l): a ratio of sums, not a mean of ratios
  (napkinXC's `normalize=True`, pyxclib's `psprecision`).
- Filter pairs (row, label) are removed from the predictions, which then close up, and from the
  ground truth, before the top k is taken; `topk_ids` may have more than max(ks) columns so that
  enough remain after filtering.
- Propensities (Jain et al. 2016): p_l = 1 / (1 + C (N_l + B)^-A), C = (ln N - 1)(B + 1)^A, with
  N the number of training points and N_l the number of training points with label l.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def jain_propensities(train_labels: sp.spmatrix, a: float = 0.55, b: float = 1.5) -> np.ndarray:
    """Propensity p_l of each label (shape (L,)) from the N x L training label matrix."""
    labels = sp.csr_matrix(train_labels)
    labels.eliminate_zeros()
    num_points, num_labels = labels.shape
    counts = np.bincount(labels.indices, minlength=num_labels).astype(np.float64)
    c = (np.log(num_points) - 1.0) * (b + 1.0) ** a
    return 1.0 / (1.0 + c * (counts + b) ** (-a))


def remove_filtered(
    topk_ids: np.ndarray,
    topk_scores: np.ndarray | None,
    filter_pairs: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Drop predicted (row, label) pairs listed in `filter_pairs`, close the gaps, keep k columns.

    Returns (ids int64 N x k, scores float32 N x k or None); empty slots have id -1 and score -inf.
    Slots already holding -1 count as empty.
    """
    ids = np.asarray(topk_ids, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"topk_ids must be 2-D (N x k), got shape {ids.shape}")
    rows = np.arange(ids.shape[0], dtype=np.int64)
    kept_ids, order, empty = _kept(ids, rows, _as_pairs(filter_pairs), k)
    kept_scores = None
    if topk_scores is not None:
        scores = np.asarray(topk_scores, dtype=np.float32)
        if scores.shape != ids.shape:
            raise ValueError(f"topk_scores shape {scores.shape} != topk_ids shape {ids.shape}")
        kept_scores = np.take_along_axis(scores, order, axis=1)
        kept_scores[empty] = -np.inf
        kept_scores = _pad(kept_scores, k, -np.inf)
    return kept_ids, kept_scores


def _kept(
    ids: np.ndarray, rows: np.ndarray, pairs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions `ids` (int64, one line per prediction row, `rows` its row of the truth) with
    the filter `pairs` and empty slots dropped and the gaps closed: the first k ids (-1 where
    empty, padded to k), the column order that took them and which of those slots are empty."""
    removed = ids < 0
    if pairs.shape[0] and ids.size:
        width = int(max(ids.max(), pairs[:, 1].max())) + 1
        pair_keys = np.sort(pairs[:, 0] * width + pairs[:, 1])
        removed |= _in_sorted(rows[:, None] * width + ids, pair_keys)
    order = np.argsort(removed, axis=1, kind="stable")[:, :k]
    empty = np.take_along_axis(removed, order, axis=1)
    kept_ids = np.take_along_axis(ids, order, axis=1)
    kept_ids[empty] = -1
    return _pad(kept_ids, k, -1), order, empty


def _in_sorted(keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`np.isin(keys, table)` for int64 keys and an ascending `table`, by binary search in the
    table rather than sorting the (many) keys with it: for the filter pairs, 0.02 s instead of
    0.17 s for a validation slice's fusion fit at wordnet-taxonomy's shape (108 rankings of 1,871
    rows x 6 ids against 1,900 pairs, keys up to rows x labels)."""
    if table.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    at = np.minimum(np.searchsorted(table, keys), table.size - 1)
    return table[at] == keys


@dataclass(frozen=True)
class RankingTruth:
    """A split's ground truth prepared once (`prepare_truth`) for scoring any number of its
    rankings (`evaluate_ranking`): the per-ranking cost is then only that of the predictions."""

    labels: sp.csr_matrix
    """Binary N x L CSR, sorted indices, filter pairs removed."""
    keys: np.ndarray
    """row * L + label of every true pair, ascending (the lookup `_hits` searches)."""
    filter_pairs: np.ndarray
    """(row, label) int64 pairs removed from the predictions."""
    depth: int
    """The largest k it answers for."""
    inverse_propensities: np.ndarray | None
    """1 / p_l per label, None without propensities (no PSP@k)."""
    best_gains: np.ndarray | None
    """N x depth: the cumulated inverse propensities of each row's best possible top k."""


def prepare_truth(
    truth: sp.spmatrix,
    depth: int,
    propensities: np.ndarray | None = None,
    filter_pairs: np.ndarray | None = None,
) -> RankingTruth:
    """`truth` (N x L, nonzeros relevant) ready to score rankings up to k = `depth`."""
    labels = _clean_truth(truth, filter_pairs)
    num_rows, num_labels = labels.shape
    rows = np.repeat(np.arange(num_rows, dtype=np.int64), np.diff(labels.indptr))
    inv = best = None
    if propensities is not None:
        inv = 1.0 / np.asarray(propensities, dtype=np.float64)
        if inv.shape != (num_labels,):
            raise ValueError(f"propensities must have shape ({num_labels},), got {inv.shape}")
        best = np.cumsum(_best_inverse_propensities(labels, rows, inv, depth), axis=1)
    return RankingTruth(
        labels=labels,
        keys=rows * num_labels + labels.indices,
        filter_pairs=_as_pairs(filter_pairs),
        depth=int(depth),
        inverse_propensities=inv,
        best_gains=best,
    )


def evaluate(
    topk_ids: np.ndarray,
    truth: sp.spmatrix,
    ks: Sequence[int] = (1, 3, 5),
    propensities: np.ndarray | None = None,
    filter_pairs: np.ndarray | None = None,
) -> dict[str, float]:
    """P@k, nDCG@k, R@k (and PSP@k when `propensities` is given) in percent, for each k in ks.

    `topk_ids`: N x K predicted label ids, best first, distinct within a row (-1 = empty slot).
    `truth`: N x L ground-truth matrix (nonzeros are the relevant labels).
    """
    _check_ks(ks)
    depth = max(int(k) for k in ks)
    return evaluate_ranking(topk_ids, prepare_truth(truth, depth, propensities, filter_pairs), ks)


def evaluate_ranking(
    topk_ids: np.ndarray, truth: RankingTruth, ks: Sequence[int] = (1, 3, 5)
) -> dict[str, float]:
    """`evaluate` against a prepared truth (its filter pairs and propensities); every k of `ks`
    must be at most `truth.depth`."""
    ids = np.asarray(topk_ids, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"topk_ids must be 2-D (N x k), got shape {ids.shape}")
    return evaluate_rankings(ids[None], truth, ks)[0]


def evaluate_rankings(
    rankings: np.ndarray, truth: RankingTruth, ks: Sequence[int] = (1, 3, 5)
) -> list[dict[str, float]]:
    """`evaluate_ranking` of each of C rankings of the truth's rows (C x N x K label ids), the
    same values, with each array pass done once over all of them (a validation slice's fusion
    fit scores about a hundred)."""
    _check_ks(ks)
    k_max = max(int(k) for k in ks)
    if k_max > truth.depth:
        raise ValueError(f"k {k_max} is beyond the depth {truth.depth} the truth was prepared for")
    stacked = np.asarray(rankings, dtype=np.int64)
    if stacked.ndim != 3:
        raise ValueError(f"rankings must be 3-D (C x N x k), got shape {stacked.shape}")
    count, num_rows, width = stacked.shape
    num_labels = truth.labels.shape[1]
    if num_rows != truth.labels.shape[0]:
        raise ValueError(f"topk_ids has {num_rows} rows but the truth has {truth.labels.shape[0]}")
    flat = stacked.reshape(count * num_rows, width)
    rows = np.tile(np.arange(num_rows, dtype=np.int64), count)
    ids, _, _ = _kept(flat, rows, truth.filter_pairs, k_max)
    _check_predictions(ids, num_labels)
    hits = _hits(ids, rows, truth.keys, num_labels)
    cum_hits = np.cumsum(hits, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k_max + 2))
    dcg = np.cumsum(hits * discount, axis=1)
    inv, ps_best = truth.inverse_propensities, truth.best_gains
    ps_gain = None if inv is None else np.cumsum(hits * inv[np.maximum(ids, 0)], axis=1)
    # what depends on the truth only, once for every ranking
    num_true = np.diff(truth.labels.indptr)
    has_labels = num_true > 0
    safe_true = np.maximum(num_true, 1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    per_k = [
        (
            k,
            ideal[np.minimum(k, safe_true)],
            None if ps_best is None else float(ps_best[:, k - 1].sum()),
        )
        for k in sorted({int(k) for k in ks})
    ]
    results = []
    for c in range(count):
        block = slice(c * num_rows, (c + 1) * num_rows)
        metrics: dict[str, float] = {}
        for k, ideal_k, best in per_k:
            found = cum_hits[block, k - 1]
            metrics[f"P@{k}"] = 100.0 * float(found.mean()) / k
            ndcg = np.where(has_labels, dcg[block, k - 1] / ideal_k, 0.0)
            metrics[f"nDCG@{k}"] = 100.0 * float(ndcg.mean())
            if ps_gain is not None and best is not None:
                gain = float(ps_gain[block, k - 1].sum())
                metrics[f"PSP@{k}"] = 100.0 * gain / best if best else 0.0
            metrics[f"R@{k}"] = 100.0 * float(np.where(has_labels, found / safe_true, 0.0).mean())
        results.append(metrics)
    return results


def metric_depth(metric: str) -> int:
    """The k of a metric named `NAME@k` (`P@1` -> 1, as the metrics here are named); KeyError
    for another name."""
    _, at, depth = metric.partition("@")
    if not at or not depth.isdigit() or int(depth) < 1:
        raise KeyError(f"metric {metric!r} is not one of the NAME@k metrics")
    return int(depth)


def _check_ks(ks: Sequence[int]) -> None:
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")


def _as_pairs(filter_pairs: np.ndarray | None) -> np.ndarray:
    if filter_pairs is None:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.asarray(filter_pairs, dtype=np.int64).reshape(-1, 2)
    return pairs


def _pad(matrix: np.ndarray, k: int, fill: float) -> np.ndarray:
    if matrix.shape[1] >= k:
        return matrix
    padding = np.full((matrix.shape[0], k - matrix.shape[1]), fill, dtype=matrix.dtype)
    return np.concatenate([matrix, padding], axis=1)


def _clean_truth(truth: sp.spmatrix, filter_pairs: np.ndarray | None) -> sp.csr_matrix:
    """Binary CSR with sorted indices, explicit zeros and filter pairs removed."""
    matrix = sp.csr_matrix(truth, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    pairs = _as_pairs(filter_pairs)
    if pairs.shape[0]:
        num_labels = matrix.shape[1]
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        keys = rows * num_labels + matrix.indices
        in_range = (pairs[:, 0] < matrix.shape[0]) & (pairs[:, 1] < num_labels)
        filtered = pairs[in_range, 0] * num_labels + pairs[in_range, 1]
        matrix.data[np.isin(keys, filtered)] = 0
        matrix.eliminate_zeros()
    matrix.data = np.ones_like(matrix.data, dtype=np.float64)
    return matrix


def _check_predictions(ids: np.ndarray, num_labels: int) -> None:
    if ids.size and ids.max() >= num_labels:
        raise ValueError(f"predicted label id {int(ids.max())} >= number of labels {num_labels}")
    ordered = np.sort(ids, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
        raise ValueError("topk_ids repeats a label id within a row")


def _hits(ids: np.ndarray, rows: np.ndarray, truth_keys: np.ndarray, num_labels: int) -> np.ndarray:
    """One line per prediction row, float64: 1 where the predicted id is a true label of its row
    of the truth (`rows`; `truth_keys`: the ascending row * L + label of the true pairs)."""
    keys = rows[:, None] * num_labels + ids
    return ((ids >= 0) & _in_sorted(keys, truth_keys)).astype(np.float64)


def _best_inverse_propensities(
    truth: sp.csr_matrix, rows: np.ndarray, inv: np.ndarray, k: int
) -> np.ndarray:
    """N x k: each row's true labels' inverse propensities, largest first, zero-padded (`rows`:
    the row of each stored entry). One integer sort (radix) of row * L + the label's rank by
    inverse propensity orders every row at once."""
    num_rows, num_labels = truth.shape
    by_weight = np.argsort(-inv, kind="stable")
    rank = np.empty(num_labels, dtype=np.int64)
    rank[by_weight] = np.arange(num_labels)
    ordered = np.sort(rows * num_labels + rank[truth.indices], kind="stable")
    position = np.arange(rows.size) - truth.indptr[rows]
    top = position < k
    best = np.zeros((num_rows, k))
    best[rows[top], position[top]] = inv[by_weight[ordered[top] % num_labels]]
    return best
