"""TF-IDF featurizer: texts -> L2-normalised sparse rows, fitted on the train texts only.

Tokens are lower-cased words; a word holding `-`, `.`, `+` or `_` (a package or identifier name such
as `libgtk-3-0`) is kept whole AND split into its parts, so both the name and its pieces match.
Features are unigrams and, optionally, bigrams of adjacent whole words. Two ways to index them:

- "vocab": a vocabulary of the n-grams with document frequency >= `min_df`, the `max_features` most
  frequent kept (ties broken by the n-gram itself, so the vocabulary is deterministic);
- "hash": `crc32(ngram) mod num_buckets`, no vocabulary to store (collisions add up).

Weights: sublinear tf (1 + ln tf) times idf = ln((1 + N) / (1 + df)) + 1 (smoothed, as
scikit-learn's), then each row is scaled to unit L2 norm. The fitted state is plain JSON.

Fit and transform split the texts into chunks that `elmo_core.parallel.map_chunks` spreads over
worker processes. Inside a chunk Python touches each text once (the word regex) and each distinct
word or bigram of the chunk once (its parts, its key or vocabulary column); the per-occurrence work
(ids, counts, weights, norms) is numpy. Fit then merges the chunks' document frequencies in
parallel too, one part of the n-grams (split by hash) at a time. The result does not depend on
the chunking or the worker count.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from elmo_core.parallel import map_chunks, worker_count

_WORD_RE = re.compile(r"[0-9a-z]+(?:[._+\-][0-9a-z]+)*\+*")
_PART_RE = re.compile(r"[._+\-]+")
CHUNK_TEXTS = 20_000


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


def chunk_bounds(num_texts: int, workers: int, chunk_texts: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) chunks of near-equal sizes covering `num_texts`: at most
    `chunk_texts` texts each, and at least a tenth of that (a smaller piece is not worth a process,
    so a few texts stay in one chunk); as many chunks as a multiple of `workers` where that allows,
    so that every worker gets an equal share."""
    count = -(-num_texts // chunk_texts)
    count = min(-(-count // workers) * workers, max(1, num_texts * 10 // chunk_texts))
    ends = [num_texts * i // count for i in range(count + 1)] if num_texts else []
    return list(itertools.pairwise(ends))


def _chunk_grams(texts: Sequence[str], bigrams: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The n-grams of `texts` as `tokenize` gives them, in arrays: (grams, rows, ids), where
    `grams` lists the distinct n-grams of the chunk and occurrence k is n-gram `grams[ids[k]]` in
    text `rows[k]` (int64 arrays, one entry per occurrence, repeats included)."""
    docs = [_WORD_RE.findall(text.lower()) for text in texts]
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    words = list(itertools.chain.from_iterable(docs))
    grams = list(dict.fromkeys(words))
    num_words = len(grams)
    index = dict(zip(grams, itertools.count()))
    word_ids = np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))
    word_rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    rows, ids = [word_rows], [word_ids]

    # The parts of each distinct compound word, as gram ids (a part may also be a word).
    num_parts = np.zeros(num_words, dtype=np.int64)
    part_ids: list[int] = []
    for word_id in range(num_words):
        pieces = _PART_RE.split(grams[word_id])
        if len(pieces) == 1:
            continue
        for part in pieces:
            if part:
                part_id = index.get(part)
                if part_id is None:
                    part_id = index[part] = len(grams)
                    grams.append(part)
                part_ids.append(part_id)
                num_parts[word_id] += 1
    compound = num_parts[word_ids] > 0
    owners, counts = word_ids[compound], num_parts[word_ids[compound]]
    occurrence = np.repeat(np.arange(len(owners)), counts)
    offset = np.arange(len(occurrence)) - np.repeat(np.cumsum(counts) - counts, counts)
    first_part = np.cumsum(num_parts) - num_parts
    rows.append(word_rows[compound][occurrence])
    ids.append(np.asarray(part_ids, dtype=np.int64)[first_part[owners][occurrence] + offset])

    if bigrams and len(words) > 1:
        adjacent = word_rows[1:] == word_rows[:-1]
        pair_keys = word_ids[:-1][adjacent] * num_words + word_ids[1:][adjacent]
        pairs, pair_ids = np.unique(pair_keys, return_inverse=True)
        left, right = np.divmod(pairs, num_words)
        distinct_words = np.asarray(grams[:num_words], dtype=object)
        rows.append(word_rows[1:][adjacent])
        ids.append(len(grams) + pair_ids)
        grams.extend(map("{} {}".format, distinct_words[left], distinct_words[right]))
    return grams, np.concatenate(rows), np.concatenate(ids)


def _buckets(grams: Sequence[str], num_buckets: int) -> np.ndarray:
    """`crc32(gram) mod num_buckets` of each gram (UTF-8), as int64."""
    codes = map(zlib.crc32, map(str.encode, grams))
    return np.fromiter(codes, dtype=np.int64, count=len(grams)) % num_buckets


_Part = tuple[str, np.ndarray, np.ndarray]


class _Job(NamedTuple):
    """What the worker processes share through the fork: the featurizer, the texts, the chunks."""

    featurizer: TfidfFeaturizer
    texts: Sequence[str]
    bounds: list[tuple[int, int]]
    parts: int = 1

    def chunk(self, index: int) -> Sequence[str]:
        """The texts of chunk `index`."""
        start, stop = self.bounds[index]
        return self.texts[start:stop]


def _chunk_frequencies(job: _Job, chunk: int) -> tuple[list[str], np.ndarray]:
    """The distinct n-grams of one chunk and, per n-gram, the number of its texts holding it."""
    grams, rows, ids = _chunk_grams(job.chunk(chunk), job.featurizer.bigrams)
    width = max(len(grams), 1)
    keys = np.sort(rows * width + ids)
    distinct = np.ones(len(keys), dtype=bool)
    distinct[1:] = keys[1:] != keys[:-1]
    return grams, np.bincount(keys[distinct] % width, minlength=len(grams))


def _bucket_frequencies(job: _Job, chunk: int) -> np.ndarray:
    """Mode "hash": one chunk's document frequencies summed per bucket (float64)."""
    grams, df = _chunk_frequencies(job, chunk)
    num_buckets = job.featurizer.num_buckets
    return np.bincount(_buckets(grams, num_buckets), weights=df, minlength=num_buckets)


def _gram_keys(grams: Sequence[str]) -> np.ndarray:
    """An int64 key per n-gram: Python's string hash, the same in every forked worker. Equal
    n-grams get equal keys; two different n-grams rarely do, and `_merge_part` checks."""
    return np.fromiter(map(hash, grams), dtype=np.int64, count=len(grams))


def _partitioned_frequencies(job: _Job, chunk: int) -> list[_Part]:
    """Mode "vocab": one chunk's distinct n-grams and their document frequencies, in `job.parts`
    parts by key, so that each part is merged over the chunks on its own. A part travels as its
    n-grams joined by newlines (no n-gram holds one), their keys and their df."""
    grams, df = _chunk_frequencies(job, chunk)
    keys = _gram_keys(grams)
    order = np.argsort(keys % job.parts, kind="stable")
    ends = np.searchsorted(keys[order] % job.parts, np.arange(job.parts + 1))
    grams_sorted = np.asarray(grams, dtype=object)[order]
    return [
        ("\n".join(grams_sorted[a:b]), keys[order[a:b]], df[order[a:b]])
        for a, b in itertools.pairwise(ends)
    ]


def _merge_part(shared: tuple[list[list[_Part]], int], part: int) -> tuple[np.ndarray, np.ndarray]:
    """One part's n-grams with their df summed over the chunks: those with df >= min_df (object
    array) and their df. Equal n-grams are brought together by sorting on the key."""
    chunks, min_df = shared
    joined = [parts[part][0] for parts in chunks]
    grams = np.asarray([g for text in joined if text for g in text.split("\n")], dtype=object)
    keys = np.concatenate([parts[part][1] for parts in chunks])
    order = np.argsort(keys)
    starts, collided = _group_starts(keys, grams, order)
    if collided:  # different n-grams with one key (rare): order by (key, n-gram) so equal ones meet
        order = np.asarray(sorted(range(len(keys)), key=lambda i: (keys[i], grams[i])), np.int64)
        starts, _ = _group_starts(keys, grams, order)
    totals = np.add.reduceat(np.concatenate([parts[part][2] for parts in chunks])[order], starts)
    keep = totals >= min_df
    return grams[order[starts[keep]]], totals[keep]


def _group_starts(
    keys: np.ndarray, grams: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, bool]:
    """The positions in `order` (entries sorted by key) where a new n-gram starts, and whether
    two neighbours with one key are different n-grams. Only neighbours with one key are compared."""
    sorted_keys = keys[order]
    repeat = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    differ = grams[order[repeat]] != grams[order[repeat + 1]]
    new = np.ones(len(order), dtype=bool)
    new[repeat + 1] = differ
    return np.flatnonzero(new), bool(differ.any())


def _transform_chunk(job: _Job, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values float32, columns int64, entries per row) of one chunk's CSR rows."""
    featurizer, texts = job.featurizer, job.chunk(chunk)
    grams, rows, ids = _chunk_grams(texts, featurizer.bigrams)
    columns = featurizer._columns(grams)[ids]
    known = columns >= 0
    width = featurizer.num_features
    keys, tf = np.unique(rows[known] * width + columns[known], return_counts=True)
    row, column = np.divmod(keys, width)
    values = (1.0 + np.log(tf)) * featurizer.idf_array[column]
    norms = np.sqrt(np.bincount(row, weights=values * values, minlength=len(texts)))
    values /= np.where(norms > 0, norms, 1.0)[row]
    return values.astype(np.float32), column, np.bincount(row, minlength=len(texts))


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

    def fit(self, texts: Sequence[str], workers: int | None = None) -> TfidfFeaturizer:
        """Fit the vocabulary (mode "vocab") and the idf on `texts` (the train split only), with
        `workers` processes (None: every available core)."""
        if self.mode not in ("vocab", "hash"):
            raise ValueError(f"tfidf mode must be 'vocab' or 'hash', got {self.mode!r}")
        if not texts:
            raise ValueError("cannot fit TF-IDF on an empty list of texts")
        count = worker_count(workers)
        bounds = chunk_bounds(len(texts), count, CHUNK_TEXTS)
        # As many merge parts as chunks: a part holds about one chunk's n-grams, whatever the size.
        job = _Job(self, texts, bounds, parts=len(bounds))
        if self.mode == "vocab":
            chunks = map_chunks(_partitioned_frequencies, job, len(bounds), count)
            merged = map_chunks(_merge_part, (chunks, self.min_df), job.parts, count)
            self.vocabulary, counts = self._select(
                np.concatenate([grams for grams, _ in merged]),
                np.concatenate([df for _, df in merged]),
            )
        else:
            counts = np.sum(map_chunks(_bucket_frequencies, job, len(bounds), count), axis=0)
        if self.num_features == 0:
            raise ValueError(
                f"TF-IDF vocabulary is empty: no n-gram occurs in >= min_df={self.min_df} texts"
            )
        num_docs = len(texts)
        self.idf = (np.log((1.0 + num_docs) / (1.0 + counts)) + 1.0).tolist()
        self.__dict__.pop("idf_array", None)
        return self

    def _select(self, grams: np.ndarray, df: np.ndarray) -> tuple[dict[str, int], np.ndarray]:
        """The vocabulary (columns in n-gram order) of the `max_features` most frequent of the
        n-grams `grams` (ties: the smaller n-gram first), and the df of each column."""
        names = grams.tolist()
        by_name = np.asarray(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
        if len(by_name) > self.max_features:
            # A stable sort on -df keeps the n-gram order among equal df.
            top = np.argsort(-df[by_name], kind="stable")[: self.max_features]
            by_name = by_name[np.sort(top)]
        vocabulary = dict(zip(grams[by_name].tolist(), itertools.count()))
        return vocabulary, df[by_name].astype(np.float64)

    @cached_property
    def idf_array(self) -> np.ndarray:
        """`idf` as a float64 array, converted once (transform runs on every prediction)."""
        return np.asarray(self.idf, dtype=np.float64)

    def _columns(self, grams: Sequence[str]) -> np.ndarray:
        """The feature column of each n-gram (int64; -1 for an n-gram outside the vocabulary)."""
        if self.mode == "vocab":
            found = map(self.vocabulary.get, grams, itertools.repeat(-1))
            return np.fromiter(found, dtype=np.int64, count=len(grams))
        return _buckets(grams, self.num_buckets)

    def transform(self, texts: Iterable[str], workers: int | None = None) -> sp.csr_matrix:
        """N x F float32 CSR: sublinear tf x idf, rows L2-normalised (unknown-only rows: empty),
        computed with `workers` processes (None: every available core)."""
        if not self.idf:
            raise ValueError("TfidfFeaturizer.transform called before fit")
        texts = texts if isinstance(texts, Sequence) else list(texts)
        count = worker_count(workers)
        job = _Job(self, texts, chunk_bounds(len(texts), count, CHUNK_TEXTS))
        chunks = map_chunks(_transform_chunk, job, len(job.bounds), count)
        entries = np.concatenate([np.zeros(1, np.int64), *(n for _, _, n in chunks)])
        return sp.csr_matrix(
            (
                np.concatenate([np.zeros(0, np.float32), *(v for v, _, _ in chunks)]),
                np.concatenate([np.zeros(0, np.int64), *(c for _, c, _ in chunks)]),
                np.cumsum(entries),
            ),
            shape=(len(texts), self.num_features),
        )

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
