"""TF-IDF featurizer against an fp64 reference computed by hand."""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter

import numpy as np
import pytest

from elmo_core.text_features import TfidfFeaturizer, tokenize
from elmo_core.text_features.word_tfidf import chunk_bounds

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
    with pytest.raises(ValueError, match="min_df"):
        TfidfFeaturizer(min_df=1).fit(["", " -- ", "\n"])
    with pytest.raises(ValueError, match="before fit"):
        TfidfFeaturizer().transform(TEXTS)


VARIED = [
    "libgtk-3-0: the GTK toolkit (libgtk-3-0 libgtk-3-0)",
    "c++ and g++ compile C++; lib.so.6 and foo_bar+baz",
    "Python3.11 python3-gi PYTHON3-GI python3 -- + .. a+ b++c x..y",
    "",
    "   \n\t ",
    "naïve Ünïcode İstanbul \u212aelvin café-au-lait 1.2.3",
    "the the the the toolkit",
    "line one\nline two\x00 the toolkit\r\n",
    "gtk",
]


def _corpus(seed: int, size: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = " ".join(VARIED).split()
    return [" ".join(rng.choice(words, size=rng.integers(0, 15))) for _ in range(size)] + VARIED


def _reference(texts, test_texts, mode, bigrams, min_df, max_features, num_buckets):
    """The featurizer as first written: one Counter per text, one dict look-up per n-gram."""
    df = Counter()
    for text in texts:
        df.update(set(tokenize(text, bigrams)))
    if mode == "vocab":
        kept = sorted((-n, g) for g, n in df.items() if n >= min_df)[:max_features]
        vocabulary = {g: i for i, g in enumerate(sorted(g for _, g in kept))}
        counts = np.array([df[g] for g in sorted(vocabulary, key=vocabulary.get)], dtype=float)
        column = vocabulary.get
    else:
        vocabulary = {}
        counts = np.zeros(num_buckets)
        for gram, n in df.items():
            counts[zlib.crc32(gram.encode("utf-8")) % num_buckets] += n

        def column(gram):
            return zlib.crc32(gram.encode("utf-8")) % num_buckets

    idf = np.log((1.0 + len(texts)) / (1.0 + counts)) + 1.0
    rows = np.zeros((len(test_texts), len(counts)))
    for row, text in enumerate(test_texts):
        tf = Counter(c for c in map(column, tokenize(text, bigrams)) if c is not None)
        for c, n in tf.items():
            rows[row, c] = (1.0 + math.log(n)) * idf[c]
        rows[row] /= np.linalg.norm(rows[row]) or 1.0
    return vocabulary, idf, rows


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"min_df": 1},
        {"bigrams": False},
        {"max_features": 10},  # the 10th and 11th n-gram tie on df
        {"min_df": 1, "max_features": 23},  # so do the 22nd to 25th
        {"mode": "hash", "num_buckets": 32},
        {"mode": "hash", "num_buckets": 4096, "bigrams": False},
    ],
)
def test_matches_the_per_text_reference_whatever_the_chunks_and_workers(settings, monkeypatch):
    train, test = _corpus(0, 200), _corpus(1, 40)
    full = {"mode": "vocab", "bigrams": True, "min_df": 2, "max_features": 200_000}
    full |= {"num_buckets": 2**18} | settings
    vocabulary, idf, expected = _reference(train, test, **full)
    monkeypatch.setattr("elmo_core.text_features.word_tfidf.CHUNK_TEXTS", 17)
    for workers in (1, 2):
        featurizer = TfidfFeaturizer(**settings).fit(train, workers=workers)
        assert featurizer.vocabulary == vocabulary
        np.testing.assert_allclose(featurizer.idf, idf, rtol=1e-12)
        rows = featurizer.transform(test, workers=workers)
        assert rows.dtype == np.float32 and rows.shape == expected.shape
        assert (rows.toarray() != 0).tolist() == (expected != 0).tolist()
        np.testing.assert_allclose(rows.toarray(), expected, rtol=1e-6, atol=0)


def test_ngrams_sharing_a_merge_key_stay_apart(monkeypatch):
    """The chunks' document frequencies are merged by a hash of the n-gram; keys shared by
    different n-grams (forced here: the key is the length) must not merge them."""
    train = _corpus(2, 150)
    vocabulary, idf, _ = _reference(train, [], "vocab", True, 2, 200_000, 0)
    monkeypatch.setattr("elmo_core.text_features.word_tfidf.CHUNK_TEXTS", 23)
    monkeypatch.setattr(
        "elmo_core.text_features.word_tfidf._gram_keys",
        lambda grams: np.fromiter(map(len, grams), dtype=np.int64, count=len(grams)),
    )
    for workers in (1, 2):
        featurizer = TfidfFeaturizer().fit(train, workers=workers)
        assert featurizer.vocabulary == vocabulary
        np.testing.assert_allclose(featurizer.idf, idf, rtol=1e-12)


def test_transform_accepts_any_iterable_and_no_texts():
    featurizer = TfidfFeaturizer(min_df=1).fit(TEXTS)
    from_generator = featurizer.transform(text for text in TEXTS)
    assert (from_generator != featurizer.transform(TEXTS)).nnz == 0
    assert featurizer.transform([]).shape == (0, featurizer.num_features)


@pytest.mark.parametrize(
    ("num_texts", "workers"), [(1, 4), (5, 2), (100, 3), (1000, 1), (41, 2), (25, 6), (9, 6)]
)
def test_chunk_bounds_cover_the_texts_in_shares_per_worker(num_texts, workers):
    bounds = chunk_bounds(num_texts, workers, chunk_texts=10)
    assert bounds[0][0] == 0 and bounds[-1][1] == num_texts
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(bounds))
    assert all(0 < stop - start <= 10 for start, stop in bounds)
    assert len(bounds) % workers == 0 or len(bounds) == num_texts
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert chunk_bounds(0, workers, chunk_texts=10) == []
    assert chunk_bounds(num_texts, workers, chunk_texts=100 * num_texts) == [(0, num_texts)]
