"""`FusedScorer`: final score = (p + a * neighbour vote + b * label-text cosine + c * linear
score) / (1 + a + b + c).

p is the head's probability `sigmoid(logit / T)` (T: the head temperature, 1 unless fitted) for
the labels among its `candidates` best (0 for the others);
the priors add the labels they rank. Every term lies in [0, 1], so the fused score does too. The
priors of a text do not depend on the head, so evaluation computes them once per split and fuses
them with each epoch's head scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.numpy import load_file, save_file

from elmo_core.fusion.label_text import LabelTextScorer
from elmo_core.fusion.linear import LinearScorer, fit_within_cost
from elmo_core.fusion.neighbours import NeighbourScorer
from elmo_core.fusion.similarity import SearchOptions
from elmo_core.fusion.sparse_topk import row_ranking
from elmo_core.parallel import map_chunks
from elmo_core.text_features.char_tfidf import CharTfidf
from elmo_core.text_features.word_tfidf import TfidfFeaturizer

PRIOR_MIN_BUDGET_S = 30.0
"""Estimated seconds a prior's search of the run's largest split may always take
(`prior_budget_s`)."""
PRIOR_BUDGET_S_PER_TEXT = 5e-5
"""Beyond `PRIOR_MIN_BUDGET_S`, the estimated seconds a search may spend per text: at least
20,000 texts a second per prior, so the two priors of a test split take about half of what an
epoch spends on as many points (an H200 epoch at the amazon-3m shape: about 1e-4 s per train
point, a test split about 0.4x the train one) and the whole test evaluation fits in an epoch."""
PLAN_SAMPLE = 10_000
"""Train texts whose features estimate each prior's cost per text (`plan_searches`' sample)."""
FUSE_ROWS = 20_000
"""Rows per task of `fuse_topk` (fixed: the result does not depend on the worker count)."""
FUSION_JSON = "fusion.json"
FUSION_TENSORS = "fusion.safetensors"


@dataclass(frozen=True)
class PriorScores:
    """Each prior's unweighted scores of the same texts (N x L CSR; None: the prior is off), so
    that the priors can be weighted again without searching again (`weighted`)."""

    shape: tuple[int, int]
    neighbours: sp.csr_matrix | None
    label_text: sp.csr_matrix | None
    votes_by_power: dict[float, sp.csr_matrix] | None = None
    """The neighbour votes with each vote power `prior_scores` was asked for (`neighbours`: those
    of the prior's own power), to choose the power; None when none was asked for."""
    linear: sp.csr_matrix | None = None

    def weighted(
        self, neighbour_weight: float, label_text_weight: float, linear_weight: float = 0.0
    ) -> sp.csr_matrix:
        """a x neighbour vote + b x label-text cosine + c x linear score (what
        `FusedScorer.priors` returns for its weights; a prior with weight 0 or None adds
        nothing)."""
        total = sp.csr_matrix(self.shape, dtype=np.float32)
        if self.label_text is not None and label_text_weight > 0:
            total = total + float(label_text_weight) * self.label_text
        if self.neighbours is not None and neighbour_weight > 0:
            total = total + float(neighbour_weight) * self.neighbours
        if self.linear is not None and linear_weight > 0:
            total = total + float(linear_weight) * self.linear
        return sp.csr_matrix(total, dtype=np.float32)


class FusedScorer:
    """The text priors of a model and their weights (a prior that is None has weight 0)."""

    def __init__(
        self,
        *,
        label_text: LabelTextScorer | None,
        neighbours: NeighbourScorer | None,
        label_text_weight: float,
        neighbour_weight: float,
        candidates: int,
        head_temperature: float = 1.0,
        linear: LinearScorer | None = None,
        linear_weight: float = 0.0,
    ) -> None:
        if not head_temperature > 0:
            raise ValueError(f"the head temperature must be positive, got {head_temperature}")
        self.label_text = label_text
        self.neighbours = neighbours
        self.linear = linear
        self.label_text_weight = float(label_text_weight) if label_text is not None else 0.0
        self.neighbour_weight = float(neighbour_weight) if neighbours is not None else 0.0
        self.linear_weight = float(linear_weight) if linear is not None else 0.0
        self.candidates = int(candidates)
        self.head_temperature = float(head_temperature)

    @classmethod
    def fit(
        cls,
        train_texts: Sequence[str],
        train_labels: sp.csr_matrix,
        label_texts: Sequence[str] | None,
        *,
        label_text_weight: float,
        neighbour_weight: float,
        neighbours: int,
        vote_power: float = 1.0,
        candidates: int,
        head_temperature: float = 1.0,
        char_ngrams: tuple[int, int],
        min_df: int,
        word_featurizer: TfidfFeaturizer | None = None,
        word_rows: sp.csr_matrix | None = None,
        linear_weight: float = 0.0,
        linear_c: float = 1.0,
        linear_min_points: int = 1,
        linear_max_cost: int | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> FusedScorer:
        """Build the priors with positive weight from the train split (and the label texts).

        `word_featurizer`: a word TF-IDF already fitted on the train texts for the neighbour
        prior (else it fits its own); `word_rows`: the train texts' rows from it, if at hand.
        The linear prior's SVMs (C = `linear_c`, labels with at least `linear_min_points` train
        points) are fitted on the character n-grams of the
        label-text prior (else on its own, of the same lengths and min_df), on `workers`
        processes (None: every core), when labels x train n-gram entries (`fit_cost`) is at most
        `linear_max_cost` (None: always); `log` receives that decision.
        """
        label_scorer = None
        if label_text_weight > 0 and label_texts is not None:
            label_scorer = LabelTextScorer.fit(
                train_texts, label_texts, ngram_range=char_ngrams, min_df=min_df, top=candidates
            )
        neighbour_scorer = None
        if neighbour_weight > 0:
            neighbour_scorer = NeighbourScorer.fit(
                train_texts,
                train_labels,
                k=neighbours,
                power=vote_power,
                featurizer=word_featurizer,
                train_rows=word_rows,
            )
        linear_scorer = None
        if linear_weight > 0:
            if label_scorer is not None:
                char = label_scorer.featurizer
            else:
                char = CharTfidf(ngram_range=char_ngrams, min_df=min_df).fit(train_texts, workers)
            linear_scorer = fit_within_cost(
                char,
                train_texts,
                train_labels,
                c=linear_c,
                min_points=linear_min_points,
                max_cost=linear_max_cost,
                workers=workers,
                log=log,
            )
        return cls(
            label_text=label_scorer,
            neighbours=neighbour_scorer,
            label_text_weight=label_text_weight,
            neighbour_weight=neighbour_weight,
            candidates=candidates,
            head_temperature=head_temperature,
            linear=linear_scorer,
            linear_weight=linear_weight if linear_scorer is not None else 0.0,
        )

    @property
    def active(self) -> bool:
        """True when at least one prior has a positive weight."""
        return self.label_text_weight > 0 or self.neighbour_weight > 0 or self.linear_weight > 0

    @property
    def shares_char_ngrams(self) -> bool:
        """True when the linear prior scores the label-text prior's character n-grams (fitted
        from them, stored once by the label-text prior)."""
        if self.linear is None or self.label_text is None:
            return False
        return self.linear.featurizer is self.label_text.featurizer

    @property
    def scale(self) -> float:
        """The sum of the weights (the head's is 1): divides the fused score into [0, 1]."""
        return 1.0 + self.label_text_weight + self.neighbour_weight + self.linear_weight

    def plan_searches(
        self,
        sample: Sequence[str],
        *,
        texts: int,
        word_rows: sp.csr_matrix | None = None,
        device: torch.device | str | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """Fix each prior's feature cap for the model's life, from `sample` (train texts;
        `word_rows`: their neighbour-prior TF-IDF rows when at hand): a search of `texts` texts on
        `device`'s engine (the run's largest split) must fit `prior_budget_s(texts)`, else it
        scores only its rarer features or the prior is off (see `elmo_core.fusion.similarity`).
        Every later search (validation, test, `elmo eval`, a served request) applies the same
        caps, so the metrics are those of the served ranking. `log` receives each decision."""
        options = search_options(device, workers, log)
        budget = prior_budget_s(texts)
        if self.label_text is not None:
            self.label_text.plan_cap(sample, options, texts=texts, budget_s=budget)
        if self.neighbours is not None:
            self.neighbours.plan_cap(sample, options, texts=texts, budget_s=budget, rows=word_rows)

    def priors(
        self,
        texts: Sequence[str],
        num_labels: int,
        word_rows: sp.csr_matrix | None = None,
        *,
        device: torch.device | str | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> sp.csr_matrix:
        """N x L CSR: a x neighbour vote + b x label-text cosine + c x linear score of each text
        (not yet scaled).

        `word_rows`: the texts' rows from the neighbour prior's own TF-IDF featurizer, when the
        caller has them already (the `tfidf` encoder's input is exactly that), to skip redoing it.
        `device`: a GPU runs the similarity searches there (torch); None or the CPU runs them on
        `workers` forked processes (None: every core). Each search scores the features within
        its prior's cap (`plan_searches`). `log` receives each search's size, engine and
        estimate, one line each.
        """
        scores = self.prior_scores(
            texts, num_labels, word_rows, device=device, workers=workers, log=log
        )
        return scores.weighted(self.neighbour_weight, self.label_text_weight, self.linear_weight)

    def prior_scores(
        self,
        texts: Sequence[str],
        num_labels: int,
        word_rows: sp.csr_matrix | None = None,
        *,
        device: torch.device | str | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = None,
        vote_powers: Sequence[float] = (),
    ) -> PriorScores:
        """Each prior's unweighted N x L scores of `texts` (None for a prior this scorer lacks),
        searched with the same options as `priors` (which weighs them); fitting the weights
        re-weights these (`PriorScores.weighted`) without searching again. `vote_powers`: also
        the neighbour votes with each of these powers, from the same search (`votes_by_power`).
        """
        options = search_options(device, workers, log)
        label_text = None
        votes: dict[float, sp.csr_matrix] = {}
        powers = [] if self.neighbours is None else sorted({self.neighbours.power, *vote_powers})
        char_rows = None  # the n-grams of both character priors, computed once when shared
        if self.linear is not None and self.shares_char_ngrams:
            char_rows = self.linear.featurizer.transform(texts, workers)
        if self.label_text is not None:
            label_text = self.label_text.scores(texts, options, char_rows)
        if self.neighbours is not None:
            votes = self.neighbours.scores_by_power(
                texts, powers, word_rows, options, top=self.candidates
            )
        linear = None
        if self.linear is not None:
            linear = self.linear.scores(texts, char_rows, top=self.candidates, workers=workers)
        return PriorScores(
            shape=(len(texts), num_labels),
            neighbours=None if self.neighbours is None else votes[self.neighbours.power],
            label_text=label_text,
            votes_by_power={p: votes[p] for p in vote_powers} if vote_powers else None,
            linear=linear,
        )

    def with_weights(
        self,
        neighbour_weight: float,
        label_text_weight: float,
        head_temperature: float | None = None,
        linear_weight: float = 0.0,
    ) -> FusedScorer:
        """A scorer sharing these priors with other weights (and head temperature; None: this
        one's); a prior whose new weight is 0 is left out, so a saved model neither stores nor
        computes it."""
        if head_temperature is None:
            head_temperature = self.head_temperature
        return FusedScorer(
            label_text=self.label_text if label_text_weight > 0 else None,
            neighbours=self.neighbours if neighbour_weight > 0 else None,
            label_text_weight=label_text_weight,
            neighbour_weight=neighbour_weight,
            candidates=self.candidates,
            head_temperature=head_temperature,
            linear=self.linear if linear_weight > 0 else None,
            linear_weight=linear_weight,
        )

    def fuse_topk(
        self, logits: np.ndarray, ids: np.ndarray, priors: sp.csr_matrix, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`fuse_topk` of the head's candidates with `priors` (from `priors`) at this scorer's
        scale and head temperature: the served ranking."""
        return fuse_topk(logits, ids, priors, self.scale, k, temperature=self.head_temperature)

    def save(self, directory: Path, encoder_featurizer: TfidfFeaturizer | None = None) -> None:
        """Write `fusion.json` and `fusion.safetensors` into a model directory. The neighbour
        prior's TF-IDF is not written again when it is `encoder_featurizer` (saved by the
        encoder as `tfidf.json`)."""
        tensors: dict[str, np.ndarray] = {}
        meta: dict = {
            "label_text_weight": self.label_text_weight,
            "neighbour_weight": self.neighbour_weight,
            "candidates": self.candidates,
            "head_temperature": self.head_temperature,
            "label_text": None,
            "neighbours": None,
            "linear_weight": self.linear_weight,
            "linear": None,
        }
        if self.label_text is not None:
            meta["label_text"] = self.label_text.meta()
            tensors.update(self.label_text.tensors())
        if self.neighbours is not None:
            meta["neighbours"] = self.neighbours.meta(encoder_featurizer)
            tensors.update(self.neighbours.tensors())
        if self.linear is not None:
            meta["linear"] = self.linear.meta(self.shares_char_ngrams)
            tensors.update(self.linear.tensors(self.shares_char_ngrams))
        save_file(tensors, str(Path(directory) / FUSION_TENSORS))
        (Path(directory) / FUSION_JSON).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(
        cls, directory: Path, encoder_featurizer: TfidfFeaturizer | None = None
    ) -> FusedScorer | None:
        """Read a model directory's fusion files (JSON + safetensors); None when it has none.
        `encoder_featurizer`: the encoder's TF-IDF, for a neighbour prior saved as sharing it.
        A model saved before the head temperature existed scores with T = 1, as it did; one
        saved before the linear prior existed has none."""
        meta_path = Path(directory) / FUSION_JSON
        if not meta_path.exists():
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(Path(directory) / FUSION_TENSORS))
        label_text = None
        if meta["label_text"] is not None:
            label_text = LabelTextScorer.from_state(meta["label_text"], tensors)
        linear = None
        if meta.get("linear") is not None:
            char = None if label_text is None else label_text.featurizer
            linear = LinearScorer.from_state(meta["linear"], tensors, char)
        return cls(
            label_text=label_text,
            neighbours=None
            if meta["neighbours"] is None
            else NeighbourScorer.from_state(meta["neighbours"], tensors, encoder_featurizer),
            label_text_weight=float(meta["label_text_weight"]),
            neighbour_weight=float(meta["neighbour_weight"]),
            candidates=int(meta["candidates"]),
            head_temperature=float(meta.get("head_temperature", 1.0)),
            linear=linear,
            linear_weight=float(meta.get("linear_weight", 0.0)),
        )


def search_options(
    device: torch.device | str | None, workers: int | None, log: Callable[[str], None] | None
) -> SearchOptions:
    """The priors' `SearchOptions` from the arguments `FusedScorer`'s methods take."""
    return SearchOptions(
        device=None if device is None else torch.device(device), workers=workers, log=log
    )


def prior_budget_s(num_texts: int) -> float:
    """The time budget of one prior's search over `num_texts` texts: the larger of
    `PRIOR_MIN_BUDGET_S` and `PRIOR_BUDGET_S_PER_TEXT` per text. Over it, the prior's cap drops
    its commonest features (the lowest idf) until the estimate fits, so a prior's cost grows with
    the texts, not with texts x labels (2.8M label texts would otherwise cost minutes per split)."""
    return max(PRIOR_MIN_BUDGET_S, PRIOR_BUDGET_S_PER_TEXT * num_texts)


def head_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The head's probabilities `sigmoid(logits / temperature)` of raw logits, in float64."""
    return 1.0 / (1.0 + np.exp(-(logits.astype(np.float64) / temperature)))


def head_candidates(
    logits: np.ndarray, ids: np.ndarray, num_labels: int, temperature: float = 1.0
) -> sp.csr_matrix:
    """The head's candidates (N x C logits and label ids) as an N x `num_labels` CSR of their
    `head_probabilities` at `temperature`: the head's term of the fused score."""
    num_rows, width = ids.shape
    return sp.csr_matrix(
        (
            head_probabilities(logits, temperature).ravel(),
            ids.ravel(),
            np.arange(0, num_rows * width + 1, width),
        ),
        shape=(num_rows, num_labels),
    )


def fuse_topk(
    logits: np.ndarray,
    ids: np.ndarray,
    priors: sp.csr_matrix,
    scale: float,
    k: int,
    workers: int | None = None,
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused scores (N x k float32) and label ids (N x k int64) of every row, best first.

    `logits`/`ids` are the head's raw scores of its candidates (N x C), turned into
    `head_probabilities` at `temperature`; `priors` the weighted priors of the same rows
    (N x L); `scale` the sum of the weights. Ties rank the lower label
    id first. A row with fewer than k candidates in all pads with id -1 and score 0. Blocks of
    `FUSE_ROWS` rows run on `workers` forked processes (None: every core; one block runs here).
    """
    num_chunks = -(-ids.shape[0] // FUSE_ROWS)
    if num_chunks == 0:
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    job = (logits, ids, priors, scale, k, temperature)
    parts = map_chunks(_fuse_task, job, num_chunks, workers)
    return np.concatenate([v for v, _ in parts]), np.concatenate([i for _, i in parts])


def _fuse_task(
    job: tuple[np.ndarray, np.ndarray, sp.csr_matrix, float, int, float], chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """`fuse_topk` of the `chunk`-th block of `FUSE_ROWS` rows (a `map_chunks` task)."""
    logits, ids, priors, scale, k, temperature = job
    rows = slice(chunk * FUSE_ROWS, (chunk + 1) * FUSE_ROWS)
    head = head_candidates(logits[rows], ids[rows], priors.shape[1], temperature)
    out_ids, values = row_ranking((head + priors[rows]).tocsr(), k)
    return (values / scale).astype(np.float32), out_ids
