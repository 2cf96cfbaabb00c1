"""Linear prior: a one-vs-rest linear SVM per label on the character n-gram TF-IDF of the texts
(squared hinge, L2, liblinear through scikit-learn's `LinearSVC`), scored as
`sigmoid(MARGIN_SCALE x margin)` for each text's best labels.

For a small label space with many points a label (the issue-15 shape: 24K texts, 570 labels) an
exact max-margin linear model per label ranks better than the head trained for a few epochs; for
10^4+ labels it would cost labels x train points, so the recipe fits it only under a bound
(`FusionConfig.linear_max_cost`). Small weights are pruned (`PRUNE_BELOW`), as DiSMEC
prunes, so the model stays a sparse label x feature matrix. The character n-grams are those of
the label-text prior when the model has one (the same lengths and min_df, fitted on the same
train texts), else its own.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from elmo_core.fusion.sparse_io import csr_from_tensors, csr_tensors
from elmo_core.fusion.sparse_topk import topk_matrix
from elmo_core.parallel import map_chunks
from elmo_core.text_features.char_tfidf import CharTfidf

MARGIN_SCALE = 2.0
"""A label's score is sigmoid(MARGIN_SCALE x margin): margin 0 (the SVM's boundary) scores 0.5,
margin +-1 (the support planes) 0.88 / 0.12."""
PRUNE_BELOW = 0.01
"""Weights smaller than this in magnitude are dropped after fitting (each feature value is at
most 1 in an L2-normalised row, so a dropped weight moves a margin by less than this)."""
LABEL_BLOCK = 64
"""Labels fitted by one task (fixed: the model does not depend on the worker count)."""
SCORE_CELLS = 2**22
"""Texts x labels of dense margins computed at once while scoring (16 MiB of float32)."""
COST_SAMPLE = 2000
"""Train texts whose n-gram entries estimate the fit's cost (`fit_cost`)."""
SEED = 0
"""liblinear's coordinate order (fixed: the same data fits the same model)."""
SHARED_FEATURIZER = "label_text"
"""`meta()["features"]` when the n-grams are the label-text prior's (stored by it)."""


class LinearScorer:
    """Per text, its `top` best labels by one-vs-rest linear SVM margin, as sigmoid scores."""

    def __init__(
        self,
        featurizer: CharTfidf,
        weights: sp.csr_matrix,
        bias: np.ndarray,
        fitted: np.ndarray,
        c: float,
    ) -> None:
        if weights.shape[0] != len(bias) or len(bias) != len(fitted):
            raise ValueError(
                f"{weights.shape[0]} weight rows, {len(bias)} biases, {len(fitted)} fitted flags"
            )
        self.featurizer = featurizer
        self.by_feature = sp.csr_matrix(sp.csr_matrix(weights, dtype=np.float32).T)
        """The weights as a feature x label CSR: a text's margins are then one sparse product
        over its own n-grams' rows (a label x feature matrix would be converted on every call,
        ~90 ms a text at the debtags proxy's 5M weights against 0.3 ms)."""
        self.bias = np.asarray(bias, dtype=np.float32)
        self.fitted = np.asarray(fitted, dtype=bool)
        self.c = float(c)

    @property
    def num_labels(self) -> int:
        """Labels of the model (those without a train point are never scored)."""
        return self.by_feature.shape[1]

    @property
    def weights(self) -> sp.csr_matrix:
        """The weights as a label x feature CSR (one row per label, as they are saved)."""
        return sp.csr_matrix(self.by_feature.T)

    @classmethod
    def fit(
        cls,
        featurizer: CharTfidf,
        train_rows: sp.csr_matrix,
        train_labels: sp.csr_matrix,
        *,
        c: float = 1.0,
        min_points: int = 1,
        workers: int | None = None,
    ) -> LinearScorer:
        """One SVM per label with at least `min_points` train points, on `train_rows` (the
        train texts' rows from `featurizer`); blocks of `LABEL_BLOCK` labels are fitted on
        `workers` forked processes (None: every core)."""
        if train_rows.shape[0] != train_labels.shape[0]:
            raise ValueError(
                f"{train_rows.shape[0]} train rows but {train_labels.shape[0]} label rows"
            )
        if not c > 0:
            raise ValueError(f"the SVM's C must be positive, got {c}")
        rows = sp.csr_matrix(train_rows, dtype=np.float64)
        labels = _label_columns(train_labels)
        fitted = np.diff(labels.indptr) >= max(1, min_points)
        num_blocks = -(-labels.shape[1] // LABEL_BLOCK)
        blocks = map_chunks(_fit_block, (rows, labels, fitted, float(c)), num_blocks, workers)
        if not blocks:
            empty = sp.csr_matrix((0, rows.shape[1]), dtype=np.float32)
            return cls(featurizer, empty, np.zeros(0, np.float32), fitted, c)
        weights = sp.vstack([w for w, _ in blocks], format="csr")
        return cls(featurizer, weights, np.concatenate([b for _, b in blocks]), fitted, c)

    def scores(
        self,
        texts: Sequence[str],
        rows: sp.csr_matrix | None = None,
        *,
        top: int,
        workers: int | None = None,
    ) -> sp.csr_matrix:
        """N x L CSR: each text's `top` fitted labels of largest margin, scored
        sigmoid(MARGIN_SCALE x margin) (ties: the lower label id). `rows`: the texts' rows from
        this scorer's featurizer, when the caller has them."""
        if rows is None:
            rows = self.featurizer.transform(texts, workers)
        rows = sp.csr_matrix(rows, dtype=np.float32)
        block = max(1, SCORE_CELLS // max(1, self.num_labels))
        num_blocks = -(-rows.shape[0] // block)
        if num_blocks == 0:
            return sp.csr_matrix((0, self.num_labels), dtype=np.float32)
        job = (rows, self, block, min(top, int(self.fitted.sum())))
        parts = map_chunks(_score_block, job, num_blocks, workers if num_blocks > 1 else 1)
        return sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)

    def margins(self, rows: sp.csr_matrix) -> np.ndarray:
        """N x L float32 margins `rows @ weights.T + bias` (-inf for labels never fitted)."""
        values = np.asarray((rows @ self.by_feature).todense(), dtype=np.float32)
        values += self.bias
        values[:, ~self.fitted] = -np.inf
        return values

    def meta(self, shared: bool) -> dict:
        """The JSON half of the state. `shared`: the n-grams are stored by the label-text prior
        (else by `tensors(shared=False)`)."""
        if shared:
            return {"c": self.c, "features": SHARED_FEATURIZER}
        return {"c": self.c, "features": "own", **self.featurizer.settings()}

    def tensors(self, shared: bool) -> dict[str, np.ndarray]:
        """The array half of the state, for safetensors (the n-grams too unless `shared`)."""
        tensors = {
            **csr_tensors("linear.weights", self.weights),
            "linear.bias": self.bias,
            "linear.fitted": self.fitted.astype(np.uint8),
        }
        if not shared:
            tensors["linear.codes"] = self.featurizer.codes
            tensors["linear.idf"] = self.featurizer.idf
        return tensors

    @classmethod
    def from_state(
        cls, meta: dict, tensors: dict[str, np.ndarray], label_text: CharTfidf | None
    ) -> LinearScorer:
        """Rebuild from `meta()` and `tensors()`; `label_text`: the label-text prior's
        n-grams, for a scorer saved as sharing them."""
        if meta["features"] == SHARED_FEATURIZER:
            if label_text is None:
                raise ValueError("the linear prior shares the label-text prior's n-grams; missing")
            featurizer = label_text
        else:
            featurizer = CharTfidf.from_arrays(meta, tensors["linear.codes"], tensors["linear.idf"])
        return cls(
            featurizer,
            csr_from_tensors(tensors, "linear.weights"),
            tensors["linear.bias"],
            tensors["linear.fitted"].astype(bool),
            float(meta["c"]),
        )


def fit_within_cost(
    featurizer: CharTfidf,
    train_texts: Sequence[str],
    train_labels: sp.csr_matrix,
    *,
    c: float,
    min_points: int = 1,
    max_cost: int | None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> LinearScorer | None:
    """`LinearScorer.fit` on the train texts' rows from `featurizer` when `fit_cost` is at
    most `max_cost` (None: always), else None; `log` receives the decision and the fit's time."""
    cost = fit_cost(featurizer, train_texts, train_labels, min_points, workers)
    fits = max_cost is None or cost <= max_cost
    if log is not None:
        bound = "none" if max_cost is None else f"{max_cost:,}"
        log(
            f"linear prior {'fitted' if fits else 'off'}: labels x train n-gram entries "
            f"{cost:,} (estimated), bound {bound}"
        )
    if not fits:
        return None
    started = time.perf_counter()
    rows = featurizer.transform(train_texts, workers)
    scorer = LinearScorer.fit(
        featurizer, rows, train_labels, c=c, min_points=min_points, workers=workers
    )
    if log is not None:
        elapsed = time.perf_counter() - started
        log(f"linear prior: {int(scorer.fitted.sum()):,} SVMs in {elapsed:.1f} s")
    return scorer


def fit_cost(
    featurizer: CharTfidf,
    train_texts: Sequence[str],
    train_labels: sp.csr_matrix,
    min_points: int = 1,
    workers: int | None = None,
) -> int:
    """Labels with at least `min_points` train points x the train rows' stored n-gram entries
    (estimated from the first `COST_SAMPLE` texts): what fitting the linear prior costs (each
    label's SVM passes over every train row, several times). Cheap, so a run whose prior is off
    pays little."""
    with_points = int((np.diff(_label_columns(train_labels).indptr) >= max(1, min_points)).sum())
    sample = train_texts[:COST_SAMPLE]
    if not sample:
        return 0
    per_text = featurizer.transform(sample, workers).nnz / len(sample)
    return with_points * round(per_text * len(train_texts))


def _label_columns(train_labels: sp.csr_matrix) -> sp.csc_matrix:
    """The label matrix by label (CSC, explicit zeros dropped): column l's stored rows are
    label l's train points, what `LinearScorer.fit` and `fit_cost` count."""
    labels = sp.csc_matrix(train_labels, dtype=np.float32)
    labels.eliminate_zeros()
    return labels


def _fit_block(
    shared: tuple[sp.csr_matrix, sp.csc_matrix, np.ndarray, float], index: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The pruned weight rows and biases of the `index`-th block of `LABEL_BLOCK` labels (an
    empty row and bias 0 for a label not fitted)."""
    from sklearn.exceptions import ConvergenceWarning  # only a fit needs scikit-learn's import
    from sklearn.svm import LinearSVC

    rows, labels, fitted, c = shared
    start = index * LABEL_BLOCK
    stop = min(start + LABEL_BLOCK, labels.shape[1])
    num_rows, num_features = rows.shape
    data: list[np.ndarray] = []
    columns: list[np.ndarray] = []
    counts = np.zeros(stop - start, dtype=np.int64)
    bias = np.zeros(stop - start, dtype=np.float32)
    for offset, label in enumerate(range(start, stop)):
        if not fitted[label]:
            continue
        target = np.full(num_rows, -1, dtype=np.int8)
        target[labels.indices[labels.indptr[label] : labels.indptr[label + 1]]] = 1
        if (target > 0).all():
            bias[offset] = 1.0
            continue
        svm = LinearSVC(C=c, random_state=SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            svm.fit(rows, target)
        weight = svm.coef_.ravel()
        keep = np.flatnonzero(np.abs(weight) >= PRUNE_BELOW)
        data.append(weight[keep].astype(np.float32))
        columns.append(keep.astype(np.int32))
        counts[offset] = len(keep)
        bias[offset] = float(svm.intercept_[0])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    weights = sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(columns) if columns else np.zeros(0, np.int32),
            indptr,
        ),
        shape=(stop - start, num_features),
    )
    return weights, bias


def _score_block(shared: tuple[sp.csr_matrix, LinearScorer, int, int], index: int) -> sp.csr_matrix:
    """`LinearScorer.scores` of the `index`-th block of texts."""
    rows, scorer, block, top = shared
    margins = scorer.margins(rows[index * block : (index + 1) * block])
    if top <= 0:
        return sp.csr_matrix(margins.shape, dtype=np.float32)
    order = np.argsort(-margins, axis=1, kind="stable")[:, :top]
    best = np.take_along_axis(margins, order, axis=1)
    values = (1.0 / (1.0 + np.exp(-MARGIN_SCALE * best.astype(np.float64)))).astype(np.float32)
    return topk_matrix(values, order.astype(np.int64), scorer.num_labels)
