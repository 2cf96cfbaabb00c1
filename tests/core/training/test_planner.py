"""plan_memory: part sizes from first principles; fits(); the transformer shape without weights."""

from __future__ import annotations

from elmo_core.head.reference import bytes_per_label
from elmo_core.training import TrainConfig, plan_memory


def test_sparse_parts_match_hand_computation():
    config = TrainConfig.model_validate(
        {
            "precision": "fp8",
            "batch_size": 64,
            "encoder": {"dim": 256},
            "head": {"head_ratio": 0.25, "chunk_size": 1000},
        }
    )
    plan = plan_memory(config, num_labels=10_000, num_features=50_000)
    width = 257  # 256 dims + the bias feature
    assert plan.head_weights == 10_000 * width + 16 * 10_000
    assert plan.kahan == 2_500 * width * 2
    assert plan.chunk_size == 1000
    assert plan.chunk_buffers == 1000 * 64 * 2 + 132 * 64 * width * 4 + 2 * 64 * width * 4
    fp32 = plan_memory(config.model_copy(update={"precision": "fp32"}), 10_000, 50_000)
    assert fp32.chunk_buffers == 1000 * bytes_per_label(width, 64, False) + 2 * 64 * width * 4
    params = 50_000 * 256
    assert plan.encoder == 2 * params * 2
    assert plan.optimizer == 3 * params * 2 + 2 * params
    assert plan.total_bytes == sum(
        getattr(plan, k)
        for k in (
            "head_weights",
            "kahan",
            "chunk_buffers",
            "encoder",
            "optimizer",
            "activations",
            "framework",
        )
    )
    assert plan.fits(plan.total_bytes) and not plan.fits(plan.total_bytes - 1)
    assert plan.to_dict()["total_bytes"] == plan.total_bytes


def test_precision_orders_head_memory():
    sizes = {}
    for precision in ("fp8", "bf16", "fp32"):
        config = TrainConfig.model_validate({"precision": precision})
        sizes[precision] = plan_memory(config, 1_000_000, 100_000)
    assert sizes["fp8"].head_weights * 2 == sizes["bf16"].head_weights
    assert sizes["fp8"].head_weights * 4 == sizes["fp32"].head_weights
    assert sizes["fp32"].kahan == 0
    assert sizes["fp8"].total_bytes < sizes["bf16"].total_bytes < sizes["fp32"].total_bytes


def test_minilm_plan_reads_its_shape_without_weights():
    config = TrainConfig.model_validate({"encoder": {"name": "minilm", "max_length": 64}})
    plan = plan_memory(config, 100_000)
    params = plan.encoder // 4
    assert 20_000_000 < params < 25_000_000
    assert plan.head_weights == 100_000 * 385
    assert plan.activations > 0
