"""TF-IDF featurizer: texts -> L2-normalised sparse rows, fitted on the train texts only.

Tokens are lower-cased words; a word holding `-`, `.`, `+` or `_` (a package or identifier name such
as `libgtk-3-0`) is kept whole AND split into its parts, so both the name and its pieces match.
Features are unigrams and, optionally, bigrams of adjacent whole words. Two ways to index them:

- "vocab": a vocabulary of the n-grams with document frequency >= `min_df`, the `max_features` most
  frequent kept (ties broken by the n-gram itself, so the vocabulary is deterministic);
- "hash": `crc32(ngram) mod num_buckets`, no vocabulary to store (collisions add up).

Weights: sublinear tf (1 + ln tf) times idf = ln((1 + N) / (1 + df)) + 1 (smoothed, as
scikit-learn's), then each row is scaled to unit L2 norm. The fitted state is plain JSON.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

_WORD_RE = re.compile(r"[0-9a-z]+(?:[._+\-][0-9a-z]+)*\+*")
_PART_RE = re.compile(r"[._+\-]+")


def tokenize(text: str, bigrams: bool = True) -> list[str]:
    """The n-grams of one text (with repeats): words, the parts of compound words, word bigrams."""
    words = _WORD_RE.findall(text.lower())
    grams = list(words)
    for word in words:
        parts = _PART_RE.split(word)
        if len(parts) > 1:
            grams.extend(part for part in parts if part)
    if bigrams:
        grams.extend(f"{a} {b}" for a, b in itertools.pairwise(words))
    return grams


@dataclass
class TfidfFeaturizer:
    """Maps texts to an N x F float32 CSR matrix of L2-normalised sublinear TF-IDF weights."""

    mode: str = "vocab"
    bigrams: bool = True
    min_df: int = 2
    max_features: int = 200_000
    num_buckets: int = 2**18
    vocabulary: dict[str, int] = field(default_factory=dict)
    idf: list[float] = field(default_factory=list)

    @property
    def num_features(self) -> int:
        """Number of feature columns (vocabulary size or hash buckets)."""
        return len(self.vocabulary) if self.mode == "vocab" else self.num_buckets

    def fit(self, texts: Sequence[str]) -> TfidfFeaturizer:
        """Fit the vocabulary (mode "vocab") and the idf on `texts` (the train split only)."""
        if self.mode not in ("vocab", "hash"):
            raise ValueError(f"tfidf mode must be 'vocab' or 'hash', got {self.mode!r}")
        if not texts:
            raise ValueError("cannot fit TF-IDF on an empty list of texts")
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(tokenize(text, self.bigrams)))
        if self.mode == "vocab":
            kept = [(-n, g) for g, n in df.items() if n >= self.min_df]
            kept.sort()
            kept = kept[: self.max_features]
            self.vocabulary = {g: i for i, g in enumerate(sorted(g for _, g in kept))}
            counts = np.zeros(len(self.vocabulary), dtype=np.float64)
            for gram, column in self.vocabulary.items():
                counts[column] = df[gram]
        else:
            counts = np.zeros(self.num_buckets, dtype=np.float64)
            for gram, n in df.items():
                counts[_bucket(gram, self.num_buckets)] += n
        if self.num_features == 0:
            raise ValueError(
                f"TF-IDF vocabulary is empty: no n-gram occurs in >= min_df={self.min_df} texts"
            )
        num_docs = len(texts)
        self.idf = (np.log((1.0 + num_docs) / (1.0 + counts)) + 1.0).tolist()
        self.__dict__.pop("idf_array", None)
        return self

    @cached_property
    def idf_array(self) -> np.ndarray:
        """`idf` as a float64 array, converted once (transform runs on every prediction)."""
        return np.asarray(self.idf, dtype=np.float64)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """N x F float32 CSR: sublinear tf x idf, rows L2-normalised (unknown-only rows: empty)."""
        if not self.idf:
            raise ValueError("TfidfFeaturizer.transform called before fit")
        idf = self.idf_array
        indptr = [0]
        indices: list[int] = []
        values: list[float] = []
        for text in texts:
            counts: Counter[int] = Counter()
            for gram in tokenize(text, self.bigrams):
                column = self._column(gram)
                if column is not None:
                    counts[column] += 1
            columns = sorted(counts)
            weights = [(1.0 + math.log(counts[c])) * idf[c] for c in columns]
            norm = math.sqrt(sum(w * w for w in weights)) or 1.0
            indices.extend(columns)
            values.extend(w / norm for w in weights)
            indptr.append(len(indices))
        return sp.csr_matrix(
            (
                np.asarray(values, dtype=np.float32),
                np.asarray(indices, dtype=np.int64),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(indptr) - 1, self.num_features),
        )

    def _column(self, gram: str) -> int | None:
        if self.mode == "vocab":
            return self.vocabulary.get(gram)
        return _bucket(gram, self.num_buckets)

    def to_json(self) -> dict:
        """The fitted state as a JSON-serialisable dict (vocabulary as a list in column order)."""
        terms = [""] * len(self.vocabulary)
        for gram, column in self.vocabulary.items():
            terms[column] = gram
        return {
            "mode": self.mode,
            "bigrams": self.bigrams,
            "min_df": self.min_df,
            "max_features": self.max_features,
            "num_buckets": self.num_buckets,
            "vocabulary": terms,
            "idf": self.idf,
        }

    @classmethod
    def from_json(cls, state: dict) -> TfidfFeaturizer:
        """Rebuild a fitted featurizer from `to_json`'s output."""
        return cls(
            mode=state["mode"],
            bigrams=bool(state["bigrams"]),
            min_df=int(state["min_df"]),
            max_features=int(state["max_features"]),
            num_buckets=int(state["num_buckets"]),
            vocabulary={g: i for i, g in enumerate(state["vocabulary"])},
            idf=[float(v) for v in state["idf"]],
        )


def l2_normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A float32 CSR copy of `matrix` with each non-empty row scaled to unit L2 norm."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    squares = out.multiply(out).sum(axis=1).A1
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0
    out.data /= np.repeat(norms, np.diff(out.indptr)).astype(np.float32)
    return out


def _bucket(gram: str, num_buckets: int) -> int:
    return zlib.crc32(gram.encode("utf-8")) % num_buckets
