"""Independently trained members of a sparse encoder, saved and served as one encoder.

`TrainConfig.members` = M > 1 trains M copies of the sparse encoder (each its own initialisation
and dropout masks) and of the head (`elmo_core.head.members`), each member on its own loss; the
model scores with the mean of the members' logits. That mean is itself one linear model: the
members' n-gram tables side by side (M x d columns) and their bias columns after them, so the
artifact is an ordinary `SparseEncoder` + `XMCHead` and predicting costs what a model M times as
wide costs (docs/training.md, "Members").

The embedding of `MemberEncoders` is laid out as the merged encoder's: member m's d columns at
m x d, then the M bias columns (member m's at M x d + m). Each member's CPU dropout masks come
from a generator of its own (`generators`, seeded per member), so the masks, hence the model, do
not depend on the order in which the members run (`elmo_core.training.member_lanes` steps them
on threads of their own).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from elmo_core.config import EncoderConfig
from elmo_core.encoders.bias import append_bias
from elmo_core.encoders.sparse import SparseEncoder, build_sparse_encoder
from elmo_core.text_features.word_tfidf import TfidfFeaturizer


class MemberEncoders(nn.Module):
    """M sparse encoders of the same featurizer, trained side by side (see the module doc)."""

    def __init__(
        self, config: EncoderConfig, first: SparseEncoder, count: int, seeds: list[int]
    ) -> None:
        """`first` is the run's encoder (its featurizer, table and options); M - 1 more members
        are drawn like it; `seeds[m]` seeds member m's dropout masks. Needs a sparse encoder
        without MLP layers (`TrainConfig` checks)."""
        super().__init__()
        if count < 2 or first.blocks:
            raise ValueError("members need at least 2 sparse encoders without MLP layers")
        if len(seeds) != count:
            raise ValueError(f"members need one dropout seed each: {count} members, {len(seeds)}")
        self.config = config
        self.bias_feature = first.bias_feature
        self.width = first.width
        self.count = int(count)
        self.members = nn.ModuleList(
            build_sparse_encoder(
                config,
                first.num_features,
                first.featurizer,
                bias_feature=0.0,
                table=first.embedding.weight.detach() if member == 0 else None,
            )
            for member in range(count)
        )
        self.bias_columns = self.count if self.bias_feature else 0
        self.dim = self.count * self.width + self.bias_columns
        self._generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        for member, generator in zip(self._members(), self._generators, strict=True):
            member.dropout.generator = generator

    def generators(self) -> dict[str, torch.Generator]:
        """Each member's dropout generator by name (`member{m}`), for checkpoints."""
        return {f"member{m}": generator for m, generator in enumerate(self._generators)}

    @property
    def featurizer(self) -> TfidfFeaturizer | None:
        """The members' shared TF-IDF featurizer (None for a dataset's own features)."""
        return self._first.featurizer

    @property
    def num_features(self) -> int:
        """Input features of every member."""
        return self._first.num_features

    @property
    def _first(self) -> SparseEncoder:
        first = self.members[0]
        assert isinstance(first, SparseEncoder)
        return first

    def tables(self) -> list[torch.Tensor]:
        """Each member's n-gram table (the parameters the row-sparse optimiser updates)."""
        return [table for member in self._members() for table in member.tables()]

    def member(self, m: int) -> SparseEncoder:
        """Member m's encoder (its B x d output is its block of `forward`, before the bias)."""
        return self._members()[m]

    def _members(self) -> list[SparseEncoder]:
        return [member for member in self.members if isinstance(member, SparseEncoder)]

    def use_sparse_gradients(self, enabled: bool = True) -> None:
        """`SparseEncoder.use_sparse_gradients` of every member."""
        for member in self._members():
            member.use_sparse_gradients(enabled)

    def featurize(self, texts: list[str] | None, features: sp.csr_matrix | None) -> sp.csr_matrix:
        """The members' shared input rows of a split (`SparseEncoder.featurize`)."""
        return self._first.featurize(texts, features)

    def make_batch(
        self, prepared: sp.csr_matrix, rows: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The EmbeddingBag inputs of `rows`, the same for every member."""
        return self._first.make_batch(prepared, rows, device)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """B x (M x d + M) embeddings in the merged layout (module doc)."""
        outs = torch.cat([member(batch) for member in self.members], dim=1)
        return append_bias(outs, self.bias_feature, self.count)

    def member_columns(self, member: int) -> torch.Tensor:
        """The columns of the merged layout that member `member`'s head reads, in its order."""
        start = member * self.width
        columns = list(range(start, start + self.width))
        if self.bias_feature:
            columns.append(self.count * self.width + member)
        return torch.tensor(columns, dtype=torch.int64)

    @torch.no_grad()
    def merged(self) -> SparseEncoder:
        """One `SparseEncoder` whose output is `forward`'s in evaluation mode: the members'
        tables side by side (a copy) and M bias columns."""
        table = torch.cat([member.embedding.weight.detach() for member in self._members()], 1)
        encoder = build_sparse_encoder(
            self.config,
            self.num_features,
            self.featurizer,
            width=self.count * self.width,
            bias_columns=self.count,
            table=table,
        )
        return encoder.train(self.training)
