"""Encoders: text (or sparse features) -> B x d embeddings for the head.

Every encoder is an `nn.Module` that follows `EncoderProtocol`: `dim`, `featurize(texts,
features)` (a whole split, once), `make_batch(prepared, rows, device)`, `forward(batch) -> B x d`,
and its own persistence: `save(directory) -> meta` writes its non-weight assets into a model
directory, and `load(config, meta, directory)` rebuilds its skeleton from them (the weights live in
the artifact's safetensors). `ENCODER_KINDS` maps the artifact's `encoder.kind` to the class.
A run with `members` trains `MemberEncoders` and saves them merged into one `SparseEncoder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.config import EncoderConfig
from elmo_core.dtypes import encoder_dtype
from elmo_core.encoders.members import MemberEncoders
from elmo_core.encoders.sparse import SparseEncoder, build_sparse_encoder, tfidf_featurizer
from elmo_core.encoders.transformer import (
    TransformerEncoder,
    enable_float8,
    minilm_path,
    resolve_model_dir,
)
from elmo_core.errors import ConfigError

Encoder = SparseEncoder | TransformerEncoder
TrainingEncoder = Encoder | MemberEncoders
"""What a run trains: an encoder, or the members of one (saved merged: `MemberEncoders.merged`)."""
ENCODER_KINDS: dict[str, type[SparseEncoder] | type[TransformerEncoder]] = {
    SparseEncoder.artifact_kind: SparseEncoder,
    TransformerEncoder.artifact_kind: TransformerEncoder,
}

__all__ = [
    "ENCODER_KINDS",
    "Encoder",
    "EncoderProtocol",
    "MemberEncoders",
    "SparseEncoder",
    "TrainingEncoder",
    "TransformerEncoder",
    "build_encoder",
    "cast_encoder",
    "enable_float8",
    "load_encoder",
    "minilm_path",
    "resolve_model_dir",
    "tfidf_featurizer",
]


class EncoderProtocol(Protocol):
    """What the trainer, the scorer and the artifact need of an encoder."""

    dim: int

    def featurize(self, texts: list[str] | None, features: sp.csr_matrix | None) -> object:
        """A whole split's inputs, prepared once (TF-IDF rows, texts, ...)."""

    def make_batch(
        self, prepared: object, rows: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The tensors of `rows` of `prepared` on `device`."""

    def save(self, directory: Path) -> dict:
        """Write the non-weight assets into a model directory; return their JSON meta."""


def build_encoder(
    config: EncoderConfig, train_texts: list[str] | None, num_features: int | None
) -> Encoder:
    """A fresh encoder for `config`, fitted on the train texts where needed.

    `tfidf` fits its featurizer on `train_texts`; `features` takes `num_features` sparse columns;
    `minilm` / `hf:PATH` load a local transformer.
    """
    if config.name == "tfidf":
        if train_texts is None:
            raise ValueError(
                "encoder 'tfidf' needs raw texts; this dataset has none (use encoder 'features')"
            )
        featurizer = tfidf_featurizer(config.tfidf).fit(train_texts)
        return build_sparse_encoder(config, featurizer.num_features, featurizer)
    if config.name == "features":
        if num_features is None:
            raise ValueError("encoder 'features' needs a dataset with sparse features")
        return build_sparse_encoder(config, num_features, None)
    path = resolve_model_dir(config.name)
    return TransformerEncoder.from_directory(
        path, config.max_length, config.dropout, config.bias_feature
    )


def load_encoder(config: EncoderConfig, meta: dict, directory: Path) -> Encoder:
    """Rebuild the encoder an artifact describes (`meta` is its `save` output; weights are
    loaded by the caller)."""
    kind = meta.get("kind")
    if kind not in ENCODER_KINDS:
        raise ConfigError(f"unknown encoder kind {kind!r}; known: {sorted(ENCODER_KINDS)}")
    return ENCODER_KINDS[kind].load(config, meta, directory)


def cast_encoder(encoder: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Pure BF16 parameters unless the run is fp32 (then fp32)."""
    return encoder.to(encoder_dtype(precision))
