"""TF-IDF featurizer against an fp64 reference computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elmo_core.text_features import TfidfFeaturizer, tokenize

TEXTS = [
    "libgtk-3-0: the GTK toolkit",
    "python3-gi: GTK bindings for python3",
    "the python3 interpreter",
]


def test_tokenize_keeps_compound_names_and_their_parts():
    grams = tokenize("libgtk-3-0 uses Python3.11", bigrams=True)
    assert "libgtk-3-0" in grams and "libgtk" in grams and "python3.11" in grams
    assert "python3" in grams and "11" in grams
    assert "libgtk-3-0 uses" in grams
    assert all(" " not in g for g in tokenize("a b c", bigrams=False))


def test_weights_match_fp64_reference():
    featurizer = TfidfFeaturizer(min_df=1, bigrams=False).fit(TEXTS)
    matrix = featurizer.transform(TEXTS).toarray().astype(np.float64)
    n = len(TEXTS)
    docs = [tokenize(t, bigrams=False) for t in TEXTS]
    for row, grams in enumerate(docs):
        expected = {}
        for gram in set(grams):
            df = sum(gram in set(d) for d in docs)
            idf = math.log((1 + n) / (1 + df)) + 1
            expected[gram] = (1 + math.log(grams.count(gram))) * idf
        norm = math.sqrt(sum(v * v for v in expected.values()))
        for gram, value in expected.items():
            column = featurizer.vocabulary[gram]
            assert matrix[row, column] == pytest.approx(value / norm, rel=1e-6)
        assert np.linalg.norm(matrix[row]) == pytest.approx(1.0, abs=1e-6)
        assert np.count_nonzero(matrix[row]) == len(expected)


def test_min_df_max_features_and_unknown_words():
    featurizer = TfidfFeaturizer(min_df=2, bigrams=False).fit(TEXTS)
    assert set(featurizer.vocabulary) == {"gtk", "the", "python3"}
    top = TfidfFeaturizer(min_df=1, max_features=2, bigrams=False).fit(TEXTS)
    assert len(top.vocabulary) == 2
    empty = featurizer.transform(["zzz unknown words"])
    assert empty.nnz == 0


def test_hash_mode_and_json_round_trip():
    featurizer = TfidfFeaturizer(mode="hash", num_buckets=64).fit(TEXTS)
    assert featurizer.num_features == 64
    again = TfidfFeaturizer.from_json(featurizer.to_json())
    a = featurizer.transform(TEXTS).toarray()
    b = again.transform(TEXTS).toarray()
    np.testing.assert_array_equal(a, b)
    vocab = TfidfFeaturizer(min_df=1).fit(TEXTS)
    restored = TfidfFeaturizer.from_json(vocab.to_json())
    assert restored.vocabulary == vocab.vocabulary


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        TfidfFeaturizer().fit([])
    with pytest.raises(ValueError, match="min_df"):
        TfidfFeaturizer(min_df=5).fit(TEXTS)
    with pytest.raises(ValueError, match="before fit"):
        TfidfFeaturizer().transform(TEXTS)
