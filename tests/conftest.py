"""Shared fixtures: a way to run the `elmo` command in a subprocess; a tiny local BERT."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TINY_BERT_WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "debian", "package", "python", "perl", "library", "data", "gtk",
]  # fmt: skip


@pytest.fixture(scope="session")
def elmo_cmd() -> list[str]:
    """argv prefix that runs the `elmo` CLI (the installed script, else this interpreter)."""
    script = shutil.which("elmo")
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from elmo_core.cli.main import main; main()"]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 1-layer, 16-wide BERT with a 12-word vocabulary saved as a local model directory
    (config, safetensors weights, tokenizer files): what `hf:PATH` loads, in milliseconds."""
    transformers = pytest.importorskip("transformers")
    import torch

    path = tmp_path_factory.mktemp("tiny-bert")
    (path / "vocab.txt").write_text("\n".join(TINY_BERT_WORDS) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    config = transformers.BertConfig(
        vocab_size=len(TINY_BERT_WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
