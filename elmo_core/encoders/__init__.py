"""Encoders: text (or sparse features) -> B x d embeddings for the head.

Every encoder is an `nn.Module` with `dim`, `kind`, `featurize(texts, features)` (a whole split,
once), `make_batch(prepared, rows, device)` and `forward(batch) -> B x d`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from elmo_core.encoders.sparse import SparseEncoder
from elmo_core.encoders.tfidf import TfidfFeaturizer, tokenize
from elmo_core.encoders.transformer import (
    TransformerEncoder,
    enable_float8,
    minilm_path,
    resolve_model_dir,
)

Encoder = SparseEncoder | TransformerEncoder

__all__ = [
    "Encoder",
    "SparseEncoder",
    "TfidfFeaturizer",
    "TransformerEncoder",
    "build_encoder",
    "enable_float8",
    "minilm_path",
    "resolve_model_dir",
    "tokenize",
]


def build_encoder(
    config, train_texts: list[str] | None, num_features: int | None
) -> SparseEncoder | TransformerEncoder:
    """A fresh encoder for `config` (an `EncoderConfig`), fitted on the train texts where needed.

    `tfidf` fits its featurizer on `train_texts`; `features` takes `num_features` sparse columns;
    `minilm` / `hf:PATH` load a local transformer.
    """
    if config.name == "tfidf":
        if train_texts is None:
            raise ValueError(
                "encoder 'tfidf' needs raw texts; this dataset has none (use encoder 'features')"
            )
        tf = config.tfidf
        featurizer = TfidfFeaturizer(
            mode=tf.mode,
            bigrams=tf.bigrams,
            min_df=tf.min_df,
            max_features=tf.max_features,
            num_buckets=tf.num_buckets,
        ).fit(train_texts)
        return _sparse(config, featurizer.num_features, featurizer)
    if config.name == "features":
        if num_features is None:
            raise ValueError("encoder 'features' needs a dataset with sparse features")
        return _sparse(config, num_features, None)
    path = resolve_model_dir(config.name)
    return TransformerEncoder.from_directory(
        path, config.max_length, config.dropout, config.bias_feature
    )


def _sparse(config, num_features: int, featurizer: TfidfFeaturizer | None) -> SparseEncoder:
    return SparseEncoder(
        num_features,
        config.dim,
        featurizer=featurizer,
        mlp_layers=config.mlp_layers,
        activation=config.activation,
        dropout=config.dropout,
        init_std=config.init_std,
        bias_feature=config.bias_feature,
    )


def encoder_meta(encoder: SparseEncoder | TransformerEncoder) -> dict:
    """What an artifact needs to rebuild the encoder's skeleton (JSON)."""
    if isinstance(encoder, SparseEncoder):
        return {"kind": "sparse", "num_features": encoder.num_features, "dim": encoder.width}
    return {"kind": "transformer", "dim": encoder.dim, "max_length": encoder.max_length}


def export_encoder(encoder: SparseEncoder | TransformerEncoder, directory: Path) -> None:
    """Write the encoder's non-weight assets (TF-IDF vocabulary, tokenizer) as JSON/text files."""
    if isinstance(encoder, SparseEncoder):
        if encoder.featurizer is not None:
            (directory / "tfidf.json").write_text(
                json.dumps(encoder.featurizer.to_json()), encoding="utf-8"
            )
        return
    encoder.export(directory / "encoder")


def load_encoder_skeleton(
    config, meta: dict, directory: Path
) -> SparseEncoder | TransformerEncoder:
    """Rebuild an encoder from an artifact's JSON (weights are loaded by the caller)."""
    if meta["kind"] == "sparse":
        featurizer = None
        vocab = directory / "tfidf.json"
        if vocab.exists():
            featurizer = TfidfFeaturizer.from_json(json.loads(vocab.read_text(encoding="utf-8")))
        return _sparse(config, int(meta["num_features"]), featurizer)
    return TransformerEncoder.from_config_dir(
        directory / "encoder", int(meta["max_length"]), config.dropout, config.bias_feature
    )


def cast_encoder(encoder: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Pure BF16 parameters unless the run is fp32 (then fp32)."""
    return encoder.to(torch.float32 if precision == "fp32" else torch.bfloat16)
