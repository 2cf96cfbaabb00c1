"""The linear prior: one-vs-rest SVMs on character n-gram TF-IDF, against scikit-learn's own
`LinearSVC` (unpruned), saved and loaded, bounded by its fit cost, fused like the other priors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError
from sklearn.svm import LinearSVC

from elmo_core.config import FusionConfig
from elmo_core.fusion import FusedScorer
from elmo_core.fusion.linear import MARGIN_SCALE, PRUNE_BELOW, LinearScorer, fit_cost
from elmo_core.text_features.char_tfidf import CharTfidf

NUM_LABELS = 8
"""Label 7 has no train point."""
WORDS = [
    ["kernel", "driver", "module"],
    ["python", "binding", "module"],
    ["font", "glyph", "typeface"],
    ["audio", "sound", "mixer"],
    ["game", "puzzle", "arcade"],
    ["network", "socket", "proxy"],
    ["editor", "text", "syntax"],
    ["never", "seen", "label"],
]
NOISE = ["tool", "data", "utility", "library", "package", "common", "files", "support"]


def corpus(num_texts: int, seed: int) -> tuple[list[str], sp.csr_matrix]:
    """Texts of one or two labels' words plus noise; label 7 never occurs."""
    rng = np.random.default_rng(seed)
    texts, rows, cols = [], [], []
    for i in range(num_texts):
        labels = rng.choice(NUM_LABELS - 1, size=rng.integers(1, 3), replace=False)
        words = [str(rng.choice(WORDS[label])) for label in labels for _ in range(2)]
        words += [str(w) for w in rng.choice(NOISE, size=3)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        rows += [i] * len(labels)
        cols += [int(label) for label in labels]
    labels = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(num_texts, NUM_LABELS)
    )
    return texts, labels


@pytest.fixture(scope="module")
def fitted() -> tuple[CharTfidf, sp.csr_matrix, sp.csr_matrix, LinearScorer]:
    texts, labels = corpus(240, seed=3)
    char = CharTfidf(ngram_range=(3, 5), min_df=2).fit(texts, workers=1)
    rows = char.transform(texts, workers=1)
    return char, rows, labels, LinearScorer.fit(char, rows, labels, c=0.5, workers=1)


def test_margins_match_scikit_learn_within_the_pruning_bound(fitted):
    """Each label's margin equals LinearSVC's decision function up to the pruned weights: each
    is under PRUNE_BELOW, so a row of L2 norm 1 moves by at most PRUNE_BELOW x its L1 norm."""
    char, rows, labels, scorer = fitted
    queries, _ = corpus(60, seed=11)
    query_rows = char.transform(queries, workers=1)
    margins = scorer.margins(query_rows)
    bound = PRUNE_BELOW * np.asarray(abs(query_rows).sum(axis=1)).ravel() + 1e-4
    dense = sp.csc_matrix(labels)
    for label in range(NUM_LABELS - 1):
        target = np.where(dense[:, label].toarray().ravel() > 0, 1, -1)
        svm = LinearSVC(C=0.5, random_state=0).fit(sp.csr_matrix(rows, dtype=np.float64), target)
        expected = svm.decision_function(query_rows)
        assert np.all(np.abs(margins[:, label] - expected) <= bound), label
    assert np.all(margins[:, NUM_LABELS - 1] == -np.inf)  # never fitted: never scored
    assert scorer.weights.nnz < scorer.weights.shape[0] * scorer.weights.shape[1]


def test_the_svms_rank_the_held_out_texts_labels_first(fitted):
    """On texts drawn like the train ones, the top-scored label is a true one for nearly all
    (a check that the fit learns, not only that it runs)."""
    _, _, _, scorer = fitted
    queries, truth = corpus(200, seed=17)
    scores = scorer.scores(queries, top=3, workers=1)
    top = np.asarray(scores.argmax(axis=1)).ravel()
    hits = np.asarray(truth[np.arange(200), top]).ravel()
    assert hits.mean() >= 0.95


def test_scores_are_the_sigmoid_of_the_top_margins(fitted):
    char, _, _, scorer = fitted
    queries, _ = corpus(50, seed=5)
    scores = scorer.scores(queries, top=3, workers=1)
    margins = scorer.margins(char.transform(queries, workers=1))
    for row in range(50):
        order = np.argsort(-margins[row], kind="stable")[:3]
        got = scores[row].toarray().ravel()
        assert sorted(np.flatnonzero(got)) == sorted(order)
        expected = 1.0 / (1.0 + np.exp(-MARGIN_SCALE * margins[row, order].astype(np.float64)))
        np.testing.assert_allclose(got[order], expected, rtol=1e-6)
    assert scores[:, NUM_LABELS - 1].nnz == 0


def test_the_fit_does_not_depend_on_the_worker_count(fitted, monkeypatch):
    from elmo_core.fusion import linear

    char, rows, labels, scorer = fitted
    monkeypatch.setattr(linear, "LABEL_BLOCK", 3)
    forked = LinearScorer.fit(char, rows, labels, c=0.5, workers=2)
    assert abs(forked.weights - scorer.weights).max() == 0
    assert np.array_equal(forked.bias, scorer.bias)
    assert np.array_equal(forked.fitted, scorer.fitted)
    texts, _ = corpus(240, seed=3)
    assert fit_cost(char, texts, labels, workers=1) == (NUM_LABELS - 1) * rows.nnz


def fused(label_texts: list[str] | None, **kwargs) -> FusedScorer:
    texts, labels = corpus(240, seed=3)
    return FusedScorer.fit(
        texts,
        labels,
        label_texts,
        label_text_weight=0.5,
        neighbour_weight=0.25,
        neighbours=5,
        candidates=4,
        char_ngrams=(3, 5),
        min_df=2,
        linear_weight=2.0,
        linear_c=0.5,
        **kwargs,
    )


@pytest.mark.parametrize("with_label_texts", [True, False])
def test_a_model_with_the_linear_prior_saves_and_loads_to_the_same_priors(
    tmp_path, with_label_texts
):
    """With label texts the linear prior shares the label-text prior's n-grams (stored once);
    without, it stores its own. Either way the loaded model's priors are the saved one's."""
    label_texts = [" ".join(words) for words in WORDS] if with_label_texts else None
    model = fused(label_texts)
    assert model.linear is not None and model.scale == pytest.approx(3.75 - 0.5 * (not label_texts))
    if with_label_texts:
        assert (
            model.label_text is not None and model.linear.featurizer is model.label_text.featurizer
        )
    queries, _ = corpus(30, seed=8)
    before = model.priors(queries, NUM_LABELS)
    model.save(tmp_path)
    loaded = FusedScorer.load(tmp_path)
    assert loaded is not None and loaded.linear_weight == 2.0
    assert abs(loaded.priors(queries, NUM_LABELS) - before).max() == 0
    scores = model.prior_scores(queries, NUM_LABELS)
    assert scores.linear is not None and scores.linear.shape == (30, NUM_LABELS)
    expected = scores.weighted(0.25, 0.5 if with_label_texts else 0.0, 2.0)
    assert abs(expected - before).max() == 0
    assert model.with_weights(0.25, 0.5, 1.0, 0.0).linear is None


def test_the_linear_prior_is_off_over_its_cost_bound():
    logged: list[str] = []
    model = fused(None, linear_max_cost=10, log=logged.append)
    assert model.linear is None and model.linear_weight == 0.0
    assert any("linear prior off" in line for line in logged)
    logged.clear()
    model = fused(None, linear_max_cost=10**12, log=logged.append)
    assert model.linear is not None
    assert any("linear prior fitted" in line for line in logged)


def test_the_config_checks_the_linear_prior_settings():
    assert FusionConfig().active and FusionConfig().linear_c == 0.5
    off = FusionConfig(label_text_weight=0.0, neighbour_weight=0.0, linear_weight=0.0)
    assert not off.active
    assert FusionConfig(label_text_weight=0.0, neighbour_weight=0.0).active
    for bad in ({"linear_c": 0.0}, {"linear_max_cost": -1}, {"linear_weight": -1.0}):
        with pytest.raises(ValidationError):
            FusionConfig(**bad)


def test_labels_with_fewer_points_than_the_minimum_get_no_svm(fitted):
    char, rows, labels, _ = fitted
    counts = np.diff(sp.csc_matrix(labels).indptr)
    rare = int(np.argmin(np.where(counts > 0, counts, 10**9)))
    minimum = int(counts[rare]) + 1
    scorer = LinearScorer.fit(char, rows, labels, c=0.5, min_points=minimum, workers=1)
    assert not scorer.fitted[rare] and scorer.weights[rare].nnz == 0
    assert np.array_equal(scorer.fitted, counts >= minimum)
    queries, _ = corpus(40, seed=21)
    assert scorer.scores(queries, top=NUM_LABELS, workers=1)[:, rare].nnz == 0
    texts, _ = corpus(240, seed=3)
    expected = int((counts >= minimum).sum()) * rows.nnz
    assert fit_cost(char, texts, labels, minimum, workers=1) == expected
