"""Character n-gram TF-IDF, computed with numpy over the UTF-8 bytes of all texts at once.

A text is lower-cased and its whitespace collapsed; every word is padded with one space on each
side, and the n-grams (n in `ngram_range`, at most 7) are the byte windows inside one padded word
(scikit-learn's "char_wb" analyzer, on bytes). A window is identified exactly by its bytes packed
into one integer (`n << 56 | bytes`), so the vocabulary is a sorted array of integers: no strings,
no Python loop over n-grams. Weights as in `word_tfidf.py`: sublinear tf x smoothed idf, rows
L2-normed. Fit and transform run chunks of texts in worker processes (`elmo_core.parallel`); the
result does not depend on the chunking or the worker count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from elmo_core.parallel import map_chunks, worker_count
from elmo_core.text_features.word_tfidf import chunk_bounds

MAX_N = 7
_SPACE, _NEWLINE = 32, 10
CHUNK_TEXTS = 20_000


def _byte_ngrams(texts: Sequence[str], ngram_range: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(row, code) of every n-gram occurrence: int64 row within `texts`, uint64 packed code."""
    joined = "\n".join(" " + " ".join(text.lower().split()) + " " for text in texts)
    buf = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    newline = buf == _NEWLINE
    separator = newline | (buf == _SPACE)
    row_of = np.concatenate([[0], np.cumsum(newline)])[:-1]
    sep_sum = np.concatenate([[0], np.cumsum(separator)])
    nl_sum = np.concatenate([[0], np.cumsum(newline)])
    rows, codes = [], []
    lo, hi = ngram_range
    wide = buf.astype(np.uint64)
    window = wide.copy()  # the bytes of the window of width n at each start, packed
    for n in range(1, hi + 1):
        count = max(len(buf) - n + 1, 0)
        if n > 1:
            window = window[:count] | (wide[n - 1 : n - 1 + count] << np.uint64(8 * (n - 1)))
        if n < lo:
            continue
        starts = np.arange(count)
        inner_separators = sep_sum[starts + n - 1] - sep_sum[starts + 1]
        crosses_text = nl_sum[starts + n] - nl_sum[starts]
        starts = starts[(inner_separators == 0) & (crosses_text == 0)]
        rows.append(row_of[starts])
        codes.append(window[starts] | (np.uint64(n) << np.uint64(56)))
    return np.concatenate(rows).astype(np.int64), np.concatenate(codes)


def _document_frequencies(
    job: tuple[CharTfidf, Sequence[str], list[tuple[int, int]]], chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct n-gram codes of one chunk of texts and the number of its texts holding each."""
    featurizer, texts, bounds = job
    start, stop = bounds[chunk]
    rows, codes = _byte_ngrams(texts[start:stop], featurizer.ngram_range)
    # One stable sort by code: a code's occurrences all come from one n, whose rows ascend, so
    # they stay in row order and a text's repeats of a code are adjacent.
    order = np.argsort(codes, kind="stable")
    rows, codes = rows[order], codes[order]
    first = np.ones(len(codes), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (codes[1:] != codes[:-1])
    codes = codes[first]  # sorted: the distinct codes start where the code changes
    starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
    return codes[starts], np.diff(np.append(starts, len(codes)))


def _transform_task(
    job: tuple[CharTfidf, Sequence[str], list[tuple[int, int]]], chunk: int
) -> sp.csr_matrix:
    """The CSR rows of one chunk of texts."""
    featurizer, texts, bounds = job
    start, stop = bounds[chunk]
    return featurizer._transform_chunk(texts[start:stop])


@dataclass
class CharTfidf:
    """Maps texts to an N x F float32 CSR matrix of L2-normalised character n-gram TF-IDF."""

    ngram_range: tuple[int, int] = (3, 5)
    min_df: int = 2
    max_features: int = 1_000_000
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    idf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    @property
    def num_features(self) -> int:
        """Number of feature columns (kept n-grams)."""
        return len(self.codes)

    def fit(self, texts: Sequence[str], workers: int | None = None) -> CharTfidf:
        """Keep the n-grams in >= `min_df` texts (the `max_features` most frequent); set idf.
        `workers` processes share the texts (None: every available core)."""
        lo, hi = self.ngram_range
        if not 1 <= lo <= hi <= MAX_N:
            raise ValueError(f"char ngram_range needs 1 <= lo <= hi <= {MAX_N}, got {lo, hi}")
        if not texts:
            raise ValueError("cannot fit character TF-IDF on an empty list of texts")
        count = worker_count(workers)
        bounds = chunk_bounds(len(texts), count, CHUNK_TEXTS)
        chunks = map_chunks(_document_frequencies, (self, texts, bounds), len(bounds), count)
        all_codes = np.concatenate([c for c, _ in chunks])
        order = np.argsort(all_codes, kind="stable")  # the chunks' sorted runs merge fast
        code, first = np.unique(all_codes[order], return_index=True)
        df = np.add.reduceat(np.concatenate([n for _, n in chunks])[order], first)
        keep = np.flatnonzero(df >= self.min_df)
        if len(keep) > self.max_features:
            ranked = np.lexsort((code[keep], -df[keep]))
            keep = np.sort(keep[ranked[: self.max_features]])
        if len(keep) == 0:
            raise ValueError(f"no character n-gram occurs in >= min_df={self.min_df} texts")
        self.codes = code[keep]
        self.idf = (np.log((1.0 + len(texts)) / (1.0 + df[keep])) + 1.0).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str], workers: int | None = None) -> sp.csr_matrix:
        """N x F float32 CSR: sublinear tf x idf, rows L2-normalised (rows without a known n-gram
        are empty), computed with `workers` processes (None: every available core)."""
        if self.num_features == 0:
            raise ValueError("CharTfidf.transform called before fit")
        count = worker_count(workers)
        bounds = chunk_bounds(len(texts), count, CHUNK_TEXTS)
        blocks = map_chunks(_transform_task, (self, texts, bounds), len(bounds), count)
        if not blocks:
            return sp.csr_matrix((0, self.num_features), dtype=np.float32)
        return sp.vstack(blocks, format="csr")

    def _transform_chunk(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows, codes = _byte_ngrams(texts, self.ngram_range)
        columns = np.searchsorted(self.codes, codes)
        columns[columns == len(self.codes)] = 0
        known = self.codes[columns] == codes
        key = rows[known] * self.num_features + columns[known]
        key, tf = np.unique(key, return_counts=True)
        row, column = np.divmod(key, self.num_features)
        values = (1.0 + np.log(tf)) * self.idf[column]
        norms = np.sqrt(np.bincount(row, weights=values * values, minlength=len(texts)))
        values = values / np.where(norms > 0, norms, 1.0)[row]
        return sp.csr_matrix(
            (values.astype(np.float32), (row, column)), shape=(len(texts), self.num_features)
        )

    def settings(self) -> dict:
        """The n-gram lengths, min_df and max_features as JSON (a model's meta stores them
        beside the `codes` and `idf` arrays, which go to safetensors)."""
        return {
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "max_features": self.max_features,
        }

    @classmethod
    def from_arrays(cls, settings: dict, codes: np.ndarray, idf: np.ndarray) -> CharTfidf:
        """Rebuild a fitted featurizer from `settings()` and its `codes` and `idf` arrays."""
        lo, hi = settings["ngram_range"]
        return cls(
            ngram_range=(int(lo), int(hi)),
            min_df=int(settings["min_df"]),
            max_features=int(settings["max_features"]),
            codes=codes,
            idf=idf,
        )

    def to_json(self) -> dict:
        """The fitted state as a JSON-serialisable dict."""
        return {
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "max_features": self.max_features,
            "codes": [int(c) for c in self.codes],
            "idf": [float(v) for v in self.idf],
        }

    @classmethod
    def from_json(cls, state: dict) -> CharTfidf:
        """Rebuild a fitted featurizer from `to_json`'s output."""
        lo, hi = state["ngram_range"]
        return cls(
            ngram_range=(int(lo), int(hi)),
            min_df=int(state["min_df"]),
            max_features=int(state["max_features"]),
            codes=np.asarray(state["codes"], dtype=np.uint64),
            idf=np.asarray(state["idf"], dtype=np.float32),
        )
