"""Label-text prior: cosine of the character n-gram TF-IDF of a text and of each label's text.

In datasets with label texts (the LF layout) a label's text often shares names and words with the
texts it is relevant to (`libfoo-dev` -> `libfoo1: ...`, a product title -> a similar product's
title), including labels seen rarely or never in train: this prior ranks them where the head,
which learns only from train points, cannot. The n-grams and their idf come from the train texts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from elmo_core.fusion.similarity import SearchOptions, SearchPlan, SimilarityIndex
from elmo_core.fusion.sparse_io import csr_from_tensors, csr_tensors
from elmo_core.text_features.char_tfidf import CharTfidf


class LabelTextScorer:
    """Per text, its `top` most similar labels by character n-gram TF-IDF cosine."""

    def __init__(
        self,
        featurizer: CharTfidf,
        label_matrix: sp.csr_matrix,
        top: int,
        max_df: int | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.index = SimilarityIndex(label_matrix, max_df)
        self.top = int(top)

    @property
    def label_matrix(self) -> sp.csr_matrix:
        """The label texts' rows (L x F float32 CSR)."""
        return self.index.rows

    @classmethod
    def fit(
        cls,
        train_texts: Sequence[str],
        label_texts: Sequence[str],
        *,
        ngram_range: tuple[int, int],
        min_df: int,
        top: int,
    ) -> LabelTextScorer:
        """Fit the n-grams and idf on the train texts, then index the label texts."""
        featurizer = CharTfidf(ngram_range=ngram_range, min_df=min_df).fit(train_texts)
        return cls(featurizer, featurizer.transform(label_texts), top)

    def plan_cap(
        self, sample: Sequence[str], options: SearchOptions, *, texts: int, budget_s: float
    ) -> SearchPlan:
        """Decide the feature cap of every later search (`SimilarityIndex.plan_cap`) so that
        `texts` texts like `sample` take at most about `budget_s` on `options`' engine."""
        rows = self.featurizer.transform(sample, options.workers)
        return self.index.plan_cap(
            rows, options, texts=texts, budget_s=budget_s, name="label-text prior"
        )

    def scores(
        self,
        texts: Sequence[str],
        options: SearchOptions | None = None,
        rows: sp.csr_matrix | None = None,
    ) -> sp.csr_matrix:
        """N x L CSR of cosines over the features within the model's cap, the `top` largest per
        row; `options` (default: the CPU engine on every core) say where the search runs (see
        `elmo_core.fusion.similarity`); `rows`: the texts' rows from this scorer's featurizer,
        when the caller has them."""
        options = options or SearchOptions()
        start = time.perf_counter()
        if rows is None:
            rows = self.featurizer.transform(texts, options.workers)
        featurized = time.perf_counter()
        found = self.index.search(rows, self.top, options, "label-text prior")
        if options.log is not None:
            now = time.perf_counter()
            options.log(
                f"label-text prior: {len(texts):,} texts in {now - start:.1f} s "
                f"(n-grams {featurized - start:.1f} s, search {now - featurized:.1f} s)"
            )
        return found

    def meta(self) -> dict:
        """The JSON half of the state (the arrays are in `tensors`)."""
        return {**self.featurizer.settings(), "top": self.top, "max_df": self.index.max_df}

    def tensors(self) -> dict[str, np.ndarray]:
        """The array half of the state, for safetensors."""
        return {
            "label_text.codes": self.featurizer.codes,
            "label_text.idf": self.featurizer.idf,
            **csr_tensors("label_text.matrix", self.label_matrix),
        }

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, np.ndarray]) -> LabelTextScorer:
        """Rebuild from `meta()` and `tensors()`."""
        featurizer = CharTfidf.from_arrays(
            meta, tensors["label_text.codes"], tensors["label_text.idf"]
        )
        return cls(
            featurizer,
            csr_from_tensors(tensors, "label_text.matrix"),
            int(meta["top"]),
            meta.get("max_df"),  # None in models saved before the cap was stored: every feature
        )
