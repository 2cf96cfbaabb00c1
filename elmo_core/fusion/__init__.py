"""Score fusion: the head's scores plus two text priors, label-text similarity and a neighbour vote.

See docs/training.md ("Score fusion") for why and how the weights were chosen, and `similarity`
for how the priors' searches run on CPU cores or a GPU within a time budget.
"""

from elmo_core.fusion.fit import WeightFit, fit_vote_power, fit_weights
from elmo_core.fusion.fused import (
    FusedScorer,
    PriorScores,
    fuse_topk,
    head_probabilities,
    prior_budget_s,
)
from elmo_core.fusion.label_text import LabelTextScorer
from elmo_core.fusion.neighbours import NeighbourScorer
from elmo_core.fusion.similarity import SearchOptions, SimilarityIndex
from elmo_core.fusion.sparse_topk import row_ranking, row_topk, topk_product

__all__ = [
    "FusedScorer",
    "LabelTextScorer",
    "NeighbourScorer",
    "PriorScores",
    "SearchOptions",
    "SimilarityIndex",
    "WeightFit",
    "fit_vote_power",
    "fit_weights",
    "fuse_topk",
    "head_probabilities",
    "prior_budget_s",
    "row_ranking",
    "row_topk",
    "topk_product",
]
