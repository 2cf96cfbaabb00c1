"""Character n-gram TF-IDF against scikit-learn's char_wb analyzer (fp64 reference)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from elmo_core.text_features.char_tfidf import CharTfidf

WORDS = ["python3", "numpy", "library", "libfoo-dev", "shared", "files", "gtk+3.0", "perl"]


def _corpus(seed: int, size: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        "  ".join(rng.choice(WORDS, size=rng.integers(1, 8))).upper() if i % 3 == 0 else
        " ".join(rng.choice(WORDS, size=rng.integers(1, 8)))
        for i in range(size)
    ]  # fmt: skip


def test_matches_sklearn_char_wb_on_words_of_three_or_more_characters():
    """Words >= 3 chars pad to >= 5, where sklearn's short-word rule does not apply: the
    normalised rows must agree to float32 precision."""
    train, other = _corpus(0, 300), _corpus(1, 50)
    ours = CharTfidf(ngram_range=(3, 5), min_df=2).fit(train)
    ref = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)
    ref.fit(train)
    assert ours.num_features == len(ref.vocabulary_)
    a, b = ours.transform(other), ref.transform(other)
    gram_a, gram_b = (a @ a.T).toarray(), (b @ b.T).toarray()
    np.testing.assert_allclose(gram_a, gram_b, atol=1e-5)
    np.testing.assert_allclose(np.sort(ours.idf), np.sort(ref.idf_), rtol=1e-6)


def test_rows_are_unit_norm_and_unknown_text_is_empty():
    feat = CharTfidf().fit(_corpus(2, 100))
    rows = feat.transform(["numpy library", "zzzz qqqq", ""])
    norms = np.sqrt(rows.multiply(rows).sum(axis=1)).A1
    assert norms[0] == pytest.approx(1.0, abs=1e-6)
    assert rows[1].nnz == 0 and rows[2].nnz == 0


def test_state_round_trip_and_chunking(monkeypatch):
    texts = _corpus(3, 120)
    feat = CharTfidf(ngram_range=(2, 4)).fit(texts)
    again = CharTfidf.from_json(feat.to_json())
    assert (feat.transform(texts) != again.transform(texts)).nnz == 0
    monkeypatch.setattr("elmo_core.text_features.char_tfidf.CHUNK_TEXTS", 7)
    chunked = CharTfidf(ngram_range=(2, 4)).fit(texts)
    assert np.array_equal(chunked.codes, feat.codes)
    assert abs(chunked.transform(texts) - feat.transform(texts)).max() < 1e-6


def test_worker_processes_and_chunks_do_not_change_the_result(monkeypatch):
    texts = [*_corpus(4, 150), "", "ÜNÏCODE naïve  café", "libgtk-3-0 c++ g++"]
    settings = {"ngram_range": (2, 5), "max_features": 300}
    single = CharTfidf(**settings).fit(texts, workers=1)
    expected = single.transform(texts, workers=1)
    monkeypatch.setattr("elmo_core.text_features.char_tfidf.CHUNK_TEXTS", 11)
    parallel = CharTfidf(**settings).fit(texts, workers=2)
    assert np.array_equal(parallel.codes, single.codes)
    assert np.array_equal(parallel.idf, single.idf)
    rows = parallel.transform(texts, workers=2)
    assert rows.shape == expected.shape and (rows != expected).nnz == 0


def test_bad_settings():
    with pytest.raises(ValueError, match="ngram_range"):
        CharTfidf(ngram_range=(3, 9)).fit(["abc"])
    with pytest.raises(ValueError, match="empty"):
        CharTfidf().fit([])
    with pytest.raises(ValueError, match="min_df"):
        CharTfidf(min_df=5).fit(["abc def"])
    with pytest.raises(ValueError, match="before fit"):
        CharTfidf().transform(["abc"])
