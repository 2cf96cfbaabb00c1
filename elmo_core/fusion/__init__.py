"""Score fusion: the head's scores plus two text priors, label-text similarity and a neighbour vote.

See docs/training.md ("Score fusion") for why and how the weights were chosen.
"""

from elmo_core.fusion.fused import FusedScorer, fuse_topk, head_probabilities
from elmo_core.fusion.label_text import LabelTextScorer
from elmo_core.fusion.neighbours import NeighbourScorer
from elmo_core.fusion.sparse_topk import row_topk, topk_product

__all__ = [
    "FusedScorer",
    "LabelTextScorer",
    "NeighbourScorer",
    "fuse_topk",
    "head_probabilities",
    "row_topk",
    "topk_product",
]
