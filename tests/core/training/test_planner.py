"""plan_memory: part sizes against hand-computed bytes; fits(); a transformer's shape read from
its config.json alone."""

from __future__ import annotations

import shutil
from pathlib import Path

from elmo_core.training import TrainConfig, plan_memory

# The fixed small run of the hand computations below: 10,000 labels, 50,000 TF-IDF features,
# a 256-wide table (257 with the bias feature), batch 64, Kahan on a quarter of the labels.
SMALL = {
    "batch_size": 64,
    "encoder": {"dim": 256},
    "head": {"head_ratio": 0.25, "chunk_size": 1000},
}


def test_fp8_sparse_parts_match_hand_computed_bytes():
    config = TrainConfig.model_validate({**SMALL, "precision": "fp8"})
    plan = plan_memory(config, num_labels=10_000, num_features=50_000)
    # 10,000 x 257 weights of 1 byte, + the Kahan permutation and its inverse (2 x int64 a label)
    assert plan.head_weights == 2_570_000 + 160_000
    assert plan.kahan == 1_285_000  # 2,500 rows x 257 x 2 bytes (bf16)
    assert plan.chunk_size == 1000
    # Triton: G 1000 x 64 bf16 (128,000) + split-K 132 x 64 x 257 fp32 (8,684,544)
    # + the embedding and its gradient, 2 x 64 x 257 fp32 (131,584)
    assert plan.chunk_buffers == 8_944_128
    assert plan.encoder == 51_200_000  # 12.8M bf16 parameters + their gradients
    # AdamW's two moments + the Kahan buffer, 3 x 12.8M bf16, + 2 bytes x the 12.8M-element table
    assert plan.optimizer == 102_400_000
    assert plan.activations == 131_584  # 64 x 257 fp32, twice
    assert plan.framework == 768 * 2**20
    assert plan.total_bytes == 971_997_080
    assert plan.fits(971_997_080) and not plan.fits(971_997_079)
    assert plan.to_dict()["total_bytes"] == 971_997_080


def test_fp32_sparse_parts_match_hand_computed_bytes():
    config = TrainConfig.model_validate({**SMALL, "precision": "fp32"})
    plan = plan_memory(config, num_labels=10_000, num_features=50_000)
    assert plan.head_weights == 10_280_000  # 10,000 x 257 x 4 bytes: no Kahan, no permutation
    assert plan.kahan == 0
    # the reference's 12 bytes per weight + 12 per batch row (3,852 a label) x 1000 labels
    # + the embedding and its gradient (131,584)
    assert plan.chunk_buffers == 3_983_584
    assert plan.encoder == 102_400_000  # 12.8M fp32 parameters + gradients
    assert plan.optimizer == 128_000_000  # 2 fp32 moments (102.4M) + 2 bytes x 12.8M


def test_head_bytes_scale_with_labels_and_precision():
    sizes = {}
    for precision in ("fp8", "bf16", "fp32"):
        config = TrainConfig.model_validate({"precision": precision})  # dim 512 + bias feature
        sizes[precision] = plan_memory(config, 1_000_000, 100_000)
    assert sizes["fp8"].head_weights == 1_000_000 * 513  # one byte a weight, no Kahan rows
    assert sizes["bf16"].head_weights == 2 * sizes["fp8"].head_weights
    assert sizes["fp32"].head_weights == 4 * sizes["fp8"].head_weights
    assert sizes["fp32"].kahan == 0
    assert sizes["fp8"].total_bytes < sizes["bf16"].total_bytes < sizes["fp32"].total_bytes

    config = TrainConfig.model_validate({**SMALL, "precision": "fp8"})
    one, two = plan_memory(config, 10_000, 50_000), plan_memory(config, 20_000, 50_000)
    assert (two.head_weights, two.kahan) == (2 * one.head_weights, 2 * one.kahan)
    # the encoder's parts depend on the features, not on the labels
    assert (two.encoder, two.optimizer) == (one.encoder, one.optimizer)
    wider = plan_memory(config, 10_000, 100_000)
    assert (wider.head_weights, wider.kahan) == (one.head_weights, one.kahan)
    assert wider.encoder == 2 * one.encoder
    # members: each one's head, encoder, optimizer states and activations; one step's buffers
    pair = plan_memory(config.model_copy(update={"members": 2}), 10_000, 50_000)
    for part in ("head_weights", "kahan", "encoder", "activations"):
        assert getattr(pair, part) == 2 * getattr(one, part), part
    assert pair.optimizer == 2 * one.optimizer - 2 * 50_000 * config.encoder.dim
    assert pair.chunk_buffers == one.chunk_buffers and pair.framework == one.framework


def test_transformer_plan_reads_its_shape_from_config_json_without_weights(
    tiny_bert_dir: Path, tmp_path: Path
):
    # Only config.json of the tiny BERT (1 layer, 16 wide, 2 heads, 12 words, 64 positions):
    # a shape far from the planner's all-MiniLM-L6-v2 fallback (6 layers, 384 wide, 22.7M).
    model = tmp_path / "config-only"
    model.mkdir()
    shutil.copy(tiny_bert_dir / "config.json", model / "config.json")
    config = TrainConfig.model_validate(
        {"batch_size": 8, "encoder": {"name": f"hf:{model}", "max_length": 16}}
    )
    plan = plan_memory(config, 1000)
    # BERT parameters by hand: embeddings 12x16 + 64x16 + 2x16 + LayerNorm 32 = 1,280; the layer:
    # q, k, v, o 4 x (16x16 + 16) + LayerNorm 32 + 16x32 + 32 + 32x16 + 16 + LayerNorm 32
    # = 2,224; the pooler 16x16 + 16 = 272: 3,776 in all, in bf16, plus their gradients.
    assert plan.encoder == 2 * 3_776 * 2
    # AdamW + Kahan: 3 x 3,776 bf16, + 2 bytes x the largest tensor (64 x 16 positions)
    assert plan.optimizer == 3 * 3_776 * 2 + 2 * 1_024
    assert plan.head_weights == 1000 * 17  # hidden 16 + the bias feature, fp8
    # one layer: batch 8 x 16 tokens x (34 x 17 + 5 x 2 heads x 16 tokens) bytes
    assert plan.activations == 8 * 16 * (34 * 17 + 5 * 2 * 16)
