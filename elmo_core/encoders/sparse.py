"""Sparse encoder: L2-normalised sparse rows (TF-IDF of texts, or a dataset's features) -> d dims.

`EmbeddingBag(mode="sum", per_sample_weights=row values)` is the product of the sparse row with a
F x d table without ever densifying the row; an optional residual MLP adds a nonlinearity; dropout
on the output is the embedding dropout the head sees; `bias_feature` appends a constant column
(`encoders/bias.py`). With `sparse_grad` the table's gradient is a sparse COO tensor of the rows a
batch touches (CPU training updates only those: `training/row_sparse_adamw.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from elmo_core.config import EncoderConfig, TfidfConfig
from elmo_core.encoders.bias import append_bias
from elmo_core.encoders.device import batch_to_device
from elmo_core.encoders.dropout import EmbeddingDropout
from elmo_core.text_features.word_tfidf import TfidfFeaturizer, l2_normalize_rows

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class SparseEncoder(nn.Module):
    """F sparse features -> d dims: EmbeddingBag, then `mlp_layers` residual (act, linear) blocks
    (`dim` = the table width, + `bias_columns` (1; a merged model: one per member) with a bias
    feature).

    `featurizer` (fitted TF-IDF) turns texts into rows; without one the encoder takes a dataset's
    sparse features (rows are L2-normalised here).
    """

    artifact_kind = "sparse"
    vocabulary_file = "tfidf.json"

    def __init__(
        self,
        num_features: int,
        dim: int,
        *,
        featurizer: TfidfFeaturizer | None = None,
        mlp_layers: int = 0,
        activation: str = "gelu",
        dropout: float = 0.0,
        init_std: float = 1.0,
        bias_feature: float = 0.0,
        bias_columns: int = 1,
        sparse_grad: bool = False,
        table: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.bias_feature = float(bias_feature)
        self.bias_columns = int(bias_columns) if self.bias_feature else 0
        self.dim = int(dim) + self.bias_columns
        self.num_features = int(num_features)
        self.featurizer = featurizer
        self.width = int(dim)
        if table is not None and tuple(table.shape) != (self.num_features, self.width):
            raise ValueError(
                f"table must be ({self.num_features}, {self.width}), got {tuple(table.shape)}"
            )
        self.embedding = nn.EmbeddingBag(
            self.num_features, self.width, mode="sum", sparse=sparse_grad, _weight=table
        )
        if table is None:
            nn.init.normal_(self.embedding.weight, std=init_std)
        self.blocks = nn.ModuleList(
            nn.Sequential(ACTIVATIONS[activation](), nn.Linear(self.width, self.width))
            for _ in range(mlp_layers)
        )
        for block in self.blocks:
            linear = block[1]  # type: ignore[index]
            assert isinstance(linear, nn.Linear)
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.dropout = EmbeddingDropout(dropout)

    def tables(self) -> list[torch.Tensor]:
        """The n-gram table, as a list (the parameters the row-sparse optimiser updates)."""
        return [self.embedding.weight]

    def use_sparse_gradients(self, enabled: bool = True) -> None:
        """Make the table's gradient a sparse tensor of the touched rows (or dense again); the
        forward pass and the weights are the same either way."""
        self.embedding.sparse = enabled

    def featurize(self, texts: list[str] | None, features: sp.csr_matrix | None) -> sp.csr_matrix:
        """All rows of a split as an N x F float32 CSR matrix (L2-normalised)."""
        if self.featurizer is not None:
            if texts is None:
                raise ValueError("this TF-IDF encoder needs raw texts; the split has none")
            return self.featurizer.transform(texts)
        if features is None:
            raise ValueError("this sparse encoder needs sparse features; the split has none")
        if features.shape[1] > self.num_features:
            raise ValueError(
                f"features have {features.shape[1]} columns, the encoder was built for "
                f"{self.num_features}"
            )
        matrix = sp.csr_matrix(features)
        if matrix.shape[1] < self.num_features:
            matrix = sp.csr_matrix(
                (matrix.data, matrix.indices, matrix.indptr),
                shape=(matrix.shape[0], self.num_features),
            )
        return l2_normalize_rows(matrix)

    def make_batch(
        self, prepared: sp.csr_matrix, rows: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The EmbeddingBag inputs (flat indices, offsets, weights) of `rows` of `prepared`."""
        block = prepared[rows]
        dtype = self.embedding.weight.dtype
        batch = {
            "indices": torch.from_numpy(block.indices.astype(np.int64)),
            "offsets": torch.from_numpy(block.indptr[:-1].astype(np.int64)),
            "weights": torch.from_numpy(block.data.astype(np.float32)).to(dtype),
        }
        return batch_to_device(batch, device)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """B x d embeddings of one batch from `make_batch`."""
        out = self.embedding(
            batch["indices"], batch["offsets"], per_sample_weights=batch["weights"]
        )
        for block in self.blocks:
            out = out + block(out)
        return append_bias(self.dropout(out), self.bias_feature, self.bias_columns)

    def save(self, directory: Path) -> dict:
        """Write the TF-IDF vocabulary (if any) into a model directory; return the JSON meta
        that `load` needs to rebuild this encoder's skeleton."""
        if self.featurizer is not None:
            (directory / self.vocabulary_file).write_text(
                json.dumps(self.featurizer.to_json()), encoding="utf-8"
            )
        return {
            "kind": self.artifact_kind,
            "num_features": self.num_features,
            "dim": self.width,
            "bias_columns": self.bias_columns,
        }

    @classmethod
    def load(cls, config: EncoderConfig, meta: dict, directory: Path) -> SparseEncoder:
        """The skeleton `save` described (weights are loaded by the caller from safetensors)."""
        featurizer = None
        vocabulary = directory / cls.vocabulary_file
        if vocabulary.exists():
            featurizer = TfidfFeaturizer.from_json(
                json.loads(vocabulary.read_text(encoding="utf-8"))
            )
        num_features, width = int(meta["num_features"]), int(meta.get("dim", config.dim))
        return build_sparse_encoder(
            config,
            num_features,
            featurizer,
            width=width,
            bias_columns=int(meta.get("bias_columns", 1)),
            table=torch.empty(num_features, width),  # no random init: the caller loads it
        )


def tfidf_featurizer(config: TfidfConfig) -> TfidfFeaturizer:
    """An unfitted word TF-IDF featurizer with the settings of `config` (the `tfidf` encoder's)."""
    return TfidfFeaturizer(
        mode=config.mode,
        bigrams=config.bigrams,
        min_df=config.min_df,
        max_features=config.max_features,
        num_buckets=config.num_buckets,
    )


def build_sparse_encoder(
    config: EncoderConfig,
    num_features: int,
    featurizer: TfidfFeaturizer | None,
    *,
    width: int | None = None,
    bias_feature: float | None = None,
    bias_columns: int = 1,
    table: torch.Tensor | None = None,
) -> SparseEncoder:
    """A sparse encoder of `num_features` inputs with the options of `config`; `width` (table
    columns), `bias_feature` and `bias_columns` default to the config's (one bias column), and
    `table`, when given, is its n-gram table as it is (no initialisation)."""
    return SparseEncoder(
        num_features,
        config.dim if width is None else width,
        featurizer=featurizer,
        mlp_layers=config.mlp_layers,
        activation=config.activation,
        dropout=config.dropout,
        init_std=config.init_std,
        bias_feature=config.bias_feature if bias_feature is None else bias_feature,
        bias_columns=bias_columns,
        table=table,
    )
