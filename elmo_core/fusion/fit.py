"""Fitting the fusion weights (a, b, c), the head temperature T and the neighbour vote power on a
validation slice, never on a test split.

The head's candidates (logits and ids, ranked once) and each prior's unweighted scores
(`PriorScores`, searched once) are fixed; every (T, a, b, c) of a small grid only re-fuses them,
and the best by the metric wins. Ties go to the earlier temperature of the grid, then the smaller
a + b + c, then the smaller a, then the smaller b, so the choice is deterministic and leans
towards the head (and the cheaper model).

The score matrices are aligned once on the union of their entries (`AlignedScores`, padded
to N x the longest row; the head's probabilities once per temperature), so a combination costs one
weighted sum of the arrays and one partial ranking of each row, and ranks exactly as
`fuse_topk` of `PriorScores.weighted` does at that temperature (what the saved model computes when
it serves).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import scipy.sparse as sp
from numba import prange

from elmo_core.float_bits import kernel, use_torch_threads
from elmo_core.fusion.fused import PriorScores, head_candidates
from elmo_core.fusion.sparse_topk import row_ranking
from elmo_core.metrics import metric_depth


@dataclass(frozen=True)
class WeightFit:
    """The chosen weights and head temperature, the metrics of their fused ranking, and how many
    (temperature, weights) combinations were tried."""

    neighbour_weight: float
    label_text_weight: float
    head_temperature: float
    metrics: dict[str, float]
    combinations: int
    linear_weight: float = 0.0


class AlignedScores:
    """The head's probabilities (at each temperature asked for) and each prior's scores on one
    shared sparsity pattern (the union of their entries, canonical CSR), zeros where a matrix has
    no entry."""

    def __init__(self, logits: np.ndarray, ids: np.ndarray, priors: PriorScores) -> None:
        num_rows = ids.shape[0]
        shape = (num_rows, priors.shape[1])
        self._logits, self._ids = logits, ids
        head = head_candidates(logits, ids, shape[1])
        priors_on = (priors.neighbours, priors.label_text, priors.linear)
        parts = [head] + [m for m in priors_on if m is not None]
        parts = [_canonical(m) for m in parts]
        union = sp.csr_matrix(shape, dtype=np.float32)
        for part in parts:
            ones = np.ones(part.nnz, dtype=np.float32)
            union = union + sp.csr_matrix((ones, part.indices, part.indptr), shape=shape)
        union = sp.csr_matrix(union)
        union.sort_indices()
        self.shape = shape
        self.indptr, self.indices = union.indptr, union.indices
        keys = self._keys(union)
        lengths = np.diff(self.indptr)
        self.width = int(lengths.max(initial=0))
        self._rows = np.repeat(np.arange(num_rows), lengths)
        self._slots = np.arange(len(self.indices)) - np.repeat(self.indptr[:-1], lengths)
        self.columns = self._padded(self.indices.astype(np.int64), -1)
        self.padding = self._padded(np.zeros(len(self.indices), dtype=bool), True)
        self._union_keys = keys
        self._heads = {1.0: self._padded(self._aligned(head, keys), 0.0)}
        self.neighbours = self._padded_or_none(priors.neighbours, keys)
        self.label_text = self._padded_or_none(priors.label_text, keys)
        self.linear = self._padded_or_none(priors.linear, keys)

    def head(self, temperature: float = 1.0) -> np.ndarray:
        """The head's probabilities at `temperature` on the union's padded layout (computed once
        per temperature, as `fuse_topk` computes them)."""
        if temperature not in self._heads:
            matrix = head_candidates(self._logits, self._ids, self.shape[1], temperature)
            self._heads[temperature] = self._padded(self._aligned(matrix, self._union_keys), 0.0)
        return self._heads[temperature]

    @staticmethod
    def _keys(matrix: sp.csr_matrix) -> np.ndarray:
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        return rows * matrix.shape[1] + matrix.indices.astype(np.int64)

    def _aligned(self, matrix: sp.csr_matrix, keys: np.ndarray) -> np.ndarray:
        matrix = _canonical(matrix)
        values = np.zeros(len(keys), dtype=matrix.dtype)
        values[np.searchsorted(keys, self._keys(matrix))] = matrix.data
        return values

    def _padded(self, values: np.ndarray, fill: object) -> np.ndarray:
        """Values of the union's entries as an N x width array, row by row in column order,
        `fill` after each row's last entry."""
        out = np.full((self.shape[0], self.width), fill, dtype=values.dtype)
        out[self._rows, self._slots] = values
        return out

    def _padded_or_none(self, matrix: sp.csr_matrix | None, keys: np.ndarray) -> np.ndarray | None:
        return None if matrix is None else self._padded(self._aligned(matrix, keys), 0.0)

    def ranking(
        self,
        neighbour_weight: float,
        label_text_weight: float,
        k: int,
        temperature: float = 1.0,
        linear_weight: float = 0.0,
    ) -> np.ndarray:
        """The label ids (N x k) of `fuse_topk(logits, ids, priors.weighted(a, b, c), ...,
        temperature=temperature)`: the
        priors summed in float32 as `weighted` sums them, added to the head in float64; entries
        whose sum is 0 are dropped (as the sparse sum drops them); value descending, then column
        ascending; -1 where a row has fewer than k entries (as `row_ranking`)."""
        combination = (temperature, neighbour_weight, label_text_weight, linear_weight)
        return self.rankings([combination], k)[0]

    def rankings(
        self, combinations: Sequence[tuple[float, float, float, float]], k: int
    ) -> np.ndarray:
        """`ranking` of each (T, a, b, c) of `combinations`, C x N x k, in one pass over the
        rows (each row's entries stay in cache while every combination ranks them).

        Each row's entries sit in column order, so a row's first k by value descending, ties in
        slot order, are `row_ranking`'s: one pass over each row keeps them (`_fused_rankings`,
        the rows spread over the cores).
        """
        num_rows = self.shape[0]
        ids = np.full((len(combinations), num_rows, k), -1, dtype=np.int64)
        if self.width == 0 or not combinations:
            return ids
        temperatures = sorted({float(t) for t, _, _, _ in combinations})
        heads = np.stack([self.head(t) for t in temperatures])
        zeros = np.zeros((1, 1), dtype=np.float32)
        label_text = zeros if self.label_text is None else self.label_text
        neighbours = zeros if self.neighbours is None else self.neighbours
        linear = zeros if self.linear is None else self.linear

        def weights(position: int, prior: np.ndarray | None) -> np.ndarray:
            values = [w[position] if prior is not None else 0.0 for w in combinations]
            return np.array(values, dtype=np.float32)

        use_torch_threads()
        _fused_rankings(
            heads,
            np.array([temperatures.index(float(t)) for t, _, _, _ in combinations]),
            label_text,
            neighbours,
            linear,
            weights(2, self.label_text),
            weights(1, self.neighbours),
            weights(3, self.linear),
            self.padding,
            self.columns,
            ids,
        )
        return ids


@kernel
def _fused_rankings(
    heads, head_of, label_text, neighbours, linear, bs, as_, cs, padding, columns, ids
):
    """For each combination j and row i, the row's k best entries of `heads[head_of[j]] +
    float64(bs[j] * label_text + as_[j] * neighbours + cs[j] * linear)` (the priors summed in
    float32 in the order `PriorScores.weighted` sums them, a weight 0 leaves its prior out) into
    `ids[j, i]`, by insertion: an entry moves ahead of a kept one only when strictly larger, so
    ties keep slot (column) order; sums of 0 are skipped."""
    k = ids.shape[2]
    for i in prange(heads.shape[1]):
        best = np.empty(k, dtype=np.float64)
        for j in range(head_of.shape[0]):
            head = heads[head_of[j]]
            b, a, c = bs[j], as_[j], cs[j]
            kept = 0
            for s in range(heads.shape[2]):
                if padding[i, s]:
                    continue
                prior = np.float32(0.0)
                if b > 0:
                    prior = prior + b * label_text[i, s]
                if a > 0:
                    prior = prior + a * neighbours[i, s]
                if c > 0:
                    prior = prior + c * linear[i, s]
                value = head[i, s] + np.float64(prior)
                if not (value != 0.0 and value > -np.inf):
                    continue
                if kept == k and not value > best[k - 1]:
                    continue
                slot = min(kept, k - 1)
                while slot > 0 and value > best[slot - 1]:
                    best[slot] = best[slot - 1]
                    ids[j, i, slot] = ids[j, i, slot - 1]
                    slot -= 1
                best[slot] = value
                ids[j, i, slot] = columns[i, s]
                kept = min(kept + 1, k)


def _canonical(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """`matrix` with sorted, unique columns per row (a copy when it has to change, never the
    caller's arrays changed in place)."""
    matrix = sp.csr_matrix(matrix)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def weight_triples(
    grid: Sequence[float],
    has_neighbours: bool,
    has_label_text: bool,
    has_linear: bool = False,
    linear_grid: Sequence[float] | None = None,
) -> list[tuple[float, float, float]]:
    """The (a, b, c) weights to try, a and b from `grid`, c from `linear_grid` (None: `grid`),
    in tie-break order (smaller a + b + c first, then smaller a, then smaller b); a prior that
    is off keeps weight 0."""
    values = sorted(set(grid))
    a_values = values if has_neighbours else [0.0]
    b_values = values if has_label_text else [0.0]
    c_values = sorted(set(values if linear_grid is None else linear_grid)) if has_linear else [0.0]
    triples = [(float(a), float(b), float(c)) for a, b, c in product(a_values, b_values, c_values)]
    return sorted(triples, key=lambda t: (t[0] + t[1] + t[2], t[0], t[1]))


FIT_BLOCK_ENTRIES = 1 << 24
"""The most ranked ids (combinations x rows x k) `fit_weights` ranks and scores at a time."""

Scorer = Callable[[np.ndarray, Sequence[int] | None], list[dict[str, float]]]
"""Maps rankings (R x N x k label ids) and the ks to score them at (None: every k the caller
reports) to the metrics of each ranking."""


def fit_weights(
    logits: np.ndarray,
    ids: np.ndarray,
    priors: PriorScores,
    grid: Sequence[float],
    k: int,
    score: Scorer,
    metric: str,
    temperatures: Sequence[float] = (1.0,),
    linear_grid: Sequence[float] | None = None,
) -> WeightFit:
    """The head temperature of `temperatures` and the (a, b) of `grid` with the c of
    `linear_grid` (None: `grid`) whose fused top-k ranking scores best by `metric`.

    `logits`/`ids`: the head's candidates of each row (N x C, as `fuse_topk` takes them);
    `priors`: the rows' unweighted priors; `score`: the split's `Scorer`. Every combination is
    scored at `metric`'s k only (`metric_depth`), the chosen one at every k. Ties keep the
    earlier temperature of `temperatures`, then the first weights in `weight_triples` order.
    """
    if not temperatures:
        raise ValueError("no head temperature to choose from")
    triples = weight_triples(
        grid,
        priors.neighbours is not None,
        priors.label_text is not None,
        priors.linear is not None,
        linear_grid,
    )
    combinations = [(float(t), a, b, c) for t in temperatures for a, b, c in triples]
    aligned = AlignedScores(logits, ids, priors)
    block = max(1, FIT_BLOCK_ENTRIES // max(1, ids.shape[0] * k))
    selecting = (metric_depth(metric),)
    chosen, ranking, best = combinations[0], None, -np.inf
    for start in range(0, len(combinations), block):
        tried = combinations[start : start + block]
        rankings = aligned.rankings(tried, k)
        for index, metrics in enumerate(score(rankings, selecting)):
            if metric not in metrics:
                raise KeyError(f"metric {metric!r} is not one of {sorted(metrics)}")
            if metrics[metric] > best:
                chosen, ranking, best = tried[index], rankings[index].copy(), metrics[metric]
    assert ranking is not None
    temperature, a, b, c = chosen
    metrics = score(ranking[None], None)[0]
    return WeightFit(a, b, temperature, metrics, len(combinations), c)


def fit_vote_power(
    votes_by_power: dict[float, sp.csr_matrix],
    k: int,
    score: Scorer,
    metric: str,
) -> tuple[float, dict[float, float]]:
    """The neighbour vote power whose votes alone rank a validation slice best by `metric`
    (ties: the smaller power), with each power's value of the metric.

    The power says how much the closest neighbours outweigh the farther ones; which is best
    depends on the dataset (on the validation slices of debian-deps similarity ** 1, of
    wordnet-taxonomy ** 3: docs/training.md), and the votes' own ranking chooses it before any
    head exists, once per run. `score`: the split's `Scorer`.
    """
    if not votes_by_power:
        raise ValueError("no vote power to choose from")
    powers = sorted(votes_by_power)
    rankings = np.stack([row_ranking(votes_by_power[power], k)[0] for power in powers])
    values: dict[float, float] = {}
    for power, metrics in zip(powers, score(rankings, None), strict=True):
        if metric not in metrics:
            raise KeyError(f"metric {metric!r} is not one of {sorted(metrics)}")
        values[power] = metrics[metric]
    best = max(values, key=lambda power: (values[power], -power))
    return best, values
