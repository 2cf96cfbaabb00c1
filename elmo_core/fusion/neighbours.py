"""Neighbour prior: the labels of the train points most similar to a text (cosine of word
uni+bi-gram TF-IDF), each weighted by its similarity raised to a power (`power`: the larger, the
more the closest neighbours count), normalised to sum 1 over the neighbours."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from elmo_core.fusion.posting_search import posting_topk
from elmo_core.fusion.similarity import SearchOptions, SearchPlan, SimilarityIndex
from elmo_core.fusion.sparse_io import csr_from_tensors, csr_tensors
from elmo_core.fusion.sparse_topk import row_topk, topk_matrix
from elmo_core.parallel import map_chunks
from elmo_core.text_features.word_tfidf import TfidfFeaturizer

SHARED_FEATURIZER = "encoder"
VOTE_BLOCK = 8192
"""Texts whose neighbour votes are computed (and truncated) together."""
"""`meta()["tfidf"]` when the featurizer is stored by the model's `tfidf` encoder."""


class NeighbourScorer:
    """A vote of the `k` nearest train points' labels, each weighted by similarity ** `power`."""

    def __init__(
        self,
        featurizer: TfidfFeaturizer,
        train_rows: sp.csr_matrix,
        train_labels: sp.csr_matrix,
        k: int,
        max_df: int | None = None,
        power: float = 1.0,
    ) -> None:
        if train_rows.shape[0] != train_labels.shape[0]:
            raise ValueError(
                f"{train_rows.shape[0]} train rows but {train_labels.shape[0]} label rows"
            )
        self.featurizer = featurizer
        self.index = SimilarityIndex(train_rows, max_df)
        self.train_labels = sp.csr_matrix(train_labels, dtype=np.float32)
        self.k = int(k)
        if not power > 0:
            raise ValueError(f"the vote power must be positive, got {power}")
        self.power = float(power)

    @property
    def train_rows(self) -> sp.csr_matrix:
        """The train texts' rows (N x F float32 CSR)."""
        return self.index.rows

    @classmethod
    def fit(
        cls,
        train_texts: Sequence[str],
        train_labels: sp.csr_matrix,
        *,
        k: int,
        power: float = 1.0,
        featurizer: TfidfFeaturizer | None = None,
        train_rows: sp.csr_matrix | None = None,
    ) -> NeighbourScorer:
        """Index the train points; `featurizer` (already fitted on them) or a new default one.
        `train_rows`: the train texts' rows from that `featurizer`, when the caller has them."""
        if featurizer is None:
            featurizer = TfidfFeaturizer().fit(train_texts)
            train_rows = None
        if train_rows is None:
            train_rows = featurizer.transform(train_texts)
        return cls(featurizer, train_rows, train_labels, k, power=power)

    def plan_cap(
        self,
        sample: Sequence[str],
        options: SearchOptions,
        *,
        texts: int,
        budget_s: float,
        rows: sp.csr_matrix | None = None,
    ) -> SearchPlan:
        """Decide the feature cap of every later search (`SimilarityIndex.plan_cap`) so that
        `texts` texts like `sample` (`rows`: their TF-IDF rows, when at hand) take at most about
        `budget_s` on `options`' engine."""
        if rows is None:
            rows = self.featurizer.transform(sample, options.workers)
        return self.index.plan_cap(
            rows, options, texts=texts, budget_s=budget_s, name="neighbour prior"
        )

    def scores(
        self,
        texts: Sequence[str],
        rows: sp.csr_matrix | None = None,
        options: SearchOptions | None = None,
        top: int | None = None,
    ) -> sp.csr_matrix:
        """N x L CSR: sum over the `k` nearest train points of similarity ** power x labels /
        the sum of similarity ** power (rows with no similar train point are empty). `rows`:
        the texts' TF-IDF rows when the caller already has them from this same featurizer;
        `options` (default: the CPU engine on every core) say where the search runs (see
        `elmo_core.fusion.similarity`); the similarity counts the features within the model's
        cap. The vote itself, k x labels-per-point multiply-adds per text, runs where the search
        ran (`_votes`); with `top`, each row keeps only its `top` largest votes, so a large
        split's votes stay bounded."""
        return self.scores_by_power(texts, [self.power], rows, options, top)[self.power]

    def scores_by_power(
        self,
        texts: Sequence[str],
        powers: Sequence[float],
        rows: sp.csr_matrix | None = None,
        options: SearchOptions | None = None,
        top: int | None = None,
    ) -> dict[float, sp.csr_matrix]:
        """`scores` of `texts` as they would be with each vote power of `powers`, from one
        search (to choose the power on a validation slice)."""
        options = options or SearchOptions()
        start = time.perf_counter()
        if rows is None:
            rows = self.featurizer.transform(texts, options.workers)
        featurized = time.perf_counter()
        similar = self.index.search(rows, self.k, options, "neighbour prior")
        searched = time.perf_counter()
        votes = {}
        for power in powers:
            weights = similar
            if power != 1.0:
                weights = sp.csr_matrix(similar, dtype=np.float32, copy=True)
                weights.data **= power
            totals = np.asarray(weights.sum(axis=1)).ravel()
            totals[totals == 0] = 1.0
            weights = sp.csr_matrix(sp.diags(1.0 / totals) @ weights, dtype=np.float32)
            votes[float(power)] = self._votes(weights, options, top)
        if options.log is not None:
            now = time.perf_counter()
            options.log(
                f"neighbour prior: {len(texts):,} texts in {now - start:.1f} s (words "
                f"{featurized - start:.1f} s, search {searched - featurized:.1f} s, votes "
                f"{now - searched:.1f} s)"
            )
        return votes

    def _votes(
        self, weights: sp.csr_matrix, options: SearchOptions, top: int | None
    ) -> sp.csr_matrix:
        """`weights @ train_labels`, each row's `top` largest kept (all with None): on the search's
        device with `top` (the product and the ranking of the posting-list engine, the train
        points' label rows as the posting lists), else scipy on forked workers."""
        num_labels = self.train_labels.shape[1]
        if options.on_device and top is not None:
            assert options.device is not None
            values, ids = posting_topk(
                self.train_labels, weights, top, options.device, options.memory_bytes
            )
            return topk_matrix(values, ids, num_labels)
        num_blocks = -(-weights.shape[0] // VOTE_BLOCK)
        if num_blocks == 0:
            return sp.csr_matrix((0, num_labels), dtype=np.float32)
        blocks = map_chunks(
            _vote_block, (weights, self.train_labels, top), num_blocks, options.workers
        )
        return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)

    def meta(self, encoder_featurizer: TfidfFeaturizer | None = None) -> dict:
        """The JSON half of the state (the arrays are in `tensors`). When the featurizer is the
        model's `tfidf` encoder's (`encoder_featurizer`), it is stored once, by the encoder:
        `"tfidf": "encoder"` here."""
        if encoder_featurizer is not None and self.featurizer is encoder_featurizer:
            tfidf: object = SHARED_FEATURIZER
        else:
            tfidf = self.featurizer.to_json()
        return {"k": self.k, "tfidf": tfidf, "max_df": self.index.max_df, "power": self.power}

    def tensors(self) -> dict[str, np.ndarray]:
        """The array half of the state, for safetensors."""
        return {
            **csr_tensors("neighbours.rows", self.train_rows),
            **csr_tensors("neighbours.labels", self.train_labels),
        }

    @classmethod
    def from_state(
        cls,
        meta: dict,
        tensors: dict[str, np.ndarray],
        encoder_featurizer: TfidfFeaturizer | None = None,
    ) -> NeighbourScorer:
        """Rebuild from `meta()` and `tensors()`; a shared featurizer is `encoder_featurizer`."""
        if meta["tfidf"] == SHARED_FEATURIZER:
            if encoder_featurizer is None:
                raise ValueError("the neighbour prior shares the encoder's TF-IDF; it is missing")
            featurizer = encoder_featurizer
        else:
            featurizer = TfidfFeaturizer.from_json(meta["tfidf"])
        return cls(
            featurizer,
            csr_from_tensors(tensors, "neighbours.rows"),
            csr_from_tensors(tensors, "neighbours.labels"),
            int(meta["k"]),
            meta.get("max_df"),  # None in models saved before the cap was stored: every feature
            float(meta.get("power", 1.0)),  # models saved before the power was stored: 1
        )


def _vote_block(
    shared: tuple[sp.csr_matrix, sp.csr_matrix, int | None], index: int
) -> sp.csr_matrix:
    """The votes of the `index`-th block of `VOTE_BLOCK` texts (their `top` largest per row)."""
    weights, train_labels, top = shared
    start = index * VOTE_BLOCK
    votes = sp.csr_matrix(weights[start : start + VOTE_BLOCK] @ train_labels)
    return votes if top is None else row_topk(votes, top)
