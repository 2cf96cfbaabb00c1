"""Transformer encoder: mean pooling over real tokens, offline loading (tiny model + minilm)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from elmo_core.config import EncoderConfig  # noqa: E402
from elmo_core.encoders import (  # noqa: E402
    TransformerEncoder,
    load_encoder,
    minilm_path,
    resolve_model_dir,
)
from elmo_core.errors import ConfigError  # noqa: E402


def test_mean_pooling_ignores_padding(tiny_bert_dir):
    encoder = TransformerEncoder.from_directory(tiny_bert_dir, max_length=16).eval()
    texts = ["debian package", "python library debian package python"]
    batch = encoder.make_batch(texts, np.array([0, 1]), torch.device("cpu"))
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()
    with torch.no_grad():
        pooled = encoder(batch)
        alone = encoder(encoder.make_batch(texts, np.array([0]), torch.device("cpu")))
        hidden = encoder.model(**batch).last_hidden_state
    mask = batch["attention_mask"][1].bool()
    torch.testing.assert_close(pooled[1], hidden[1][mask].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pooled[0], alone[0], rtol=1e-4, atol=1e-5)
    assert pooled.shape == (2, 16)


def test_padding_to_a_token_multiple_keeps_the_pooled_embedding(tiny_bert_dir):
    """float8 training pads batches to 16-token multiples; the padding must not change outputs."""
    encoder = TransformerEncoder.from_directory(tiny_bert_dir, max_length=16).eval()
    texts = ["debian package", "python library debian"]
    rows = np.array([0, 1])
    plain = encoder.make_batch(texts, rows, torch.device("cpu"))
    encoder.pad_to_multiple_of = 16
    padded = encoder.make_batch(texts, rows, torch.device("cpu"))
    assert plain["input_ids"].shape[1] % 16 != 0
    assert padded["input_ids"].shape == (2, 16)
    with torch.no_grad():
        torch.testing.assert_close(encoder(padded), encoder(plain), rtol=1e-4, atol=1e-5)


def test_save_and_rebuild_skeleton(tiny_bert_dir, tmp_path_factory):
    encoder = TransformerEncoder.from_directory(tiny_bert_dir, max_length=16)
    target = tmp_path_factory.mktemp("export")
    meta = encoder.save(target)
    config = EncoderConfig(name="minilm", dropout=0.0, bias_feature=0.0)
    rebuilt = load_encoder(config, meta, target)
    assert isinstance(rebuilt, TransformerEncoder) and rebuilt.max_length == 16
    rebuilt.load_state_dict(encoder.state_dict())
    batch = encoder.make_batch(["python library"], np.array([0]), torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(batch), encoder.eval()(batch))


def test_hf_path_must_be_a_model_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a model directory"):
        resolve_model_dir(f"hf:{tmp_path}")


def test_minilm_embeds_two_texts_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = TransformerEncoder.from_directory(minilm_path(), max_length=32).eval()
    texts = ["a python library for parsing", "a python module for parsing files"]
    with torch.no_grad():
        out = encoder(encoder.make_batch(texts, np.arange(2), torch.device("cpu")))
    assert out.shape == (2, 384) and torch.isfinite(out).all()
    cosine = torch.nn.functional.cosine_similarity(out[0], out[1], dim=0)
    assert cosine > 0.6


def test_tokenized_once_equals_the_tokenizer_and_pads_to_buckets(tiny_bert_dir):
    """`featurize` (the backend's batch encoding) gives the tokenizer's own ids per text, and a
    batch pads to the longest row rounded up to 8 tokens, with mask 0 on the padding."""
    encoder = TransformerEncoder.from_directory(tiny_bert_dir, max_length=12)
    texts = ["debian package", "", "python library debian package python tools for the web"]
    tokens = encoder.featurize(texts, None)
    expected = encoder.tokenizer(texts, truncation=True, max_length=12)["input_ids"]
    assert [list(tokens.ids[a:b]) for a, b in itertools.pairwise(tokens.offsets)] == expected
    batch = encoder.make_batch(tokens, np.array([2, 0]), torch.device("cpu"))
    longest = len(expected[2])
    assert batch["input_ids"].shape == (2, -(-longest // 8) * 8)
    assert batch["attention_mask"].sum(dim=1).tolist() == [longest, len(expected[0])]
    assert batch["input_ids"][1, len(expected[0]) :].eq(encoder.tokenizer.pad_token_id).all()
    on_the_fly = encoder.make_batch(texts, np.array([2, 0]), torch.device("cpu"))
    assert torch.equal(on_the_fly["input_ids"], batch["input_ids"])


def test_tokenizing_on_worker_processes_equals_one_process(tiny_bert_dir, monkeypatch):
    """Chunks tokenized by forked workers come back in order: the same ids and offsets as one
    process, and as the tokenizer itself."""
    from elmo_core.encoders import tokens as tokens_module

    monkeypatch.setattr(tokens_module, "TOKENIZE_CHUNK", 3)
    encoder = TransformerEncoder.from_directory(tiny_bert_dir, max_length=12)
    words = ["debian", "package", "python", "library", "data", "gtk", "perl"]
    texts = [" ".join(words[i % 7 : i % 7 + 1 + i % 5]) for i in range(20)]
    parallel = encoder.tokenize(texts, workers=2)
    serial = encoder.tokenize(texts, workers=1)
    assert np.array_equal(parallel.ids, serial.ids)
    assert np.array_equal(parallel.offsets, serial.offsets)
    expected = encoder.tokenizer(texts, truncation=True, max_length=12)["input_ids"]
    assert [list(parallel.ids[a:b]) for a, b in itertools.pairwise(parallel.offsets)] == expected
