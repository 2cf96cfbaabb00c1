"""The host RAM plan: hand-computed parts for a small statistics dict, and how they scale."""

from __future__ import annotations

from elmo_core.config import TrainConfig
from elmo_core.training import plan_host_memory
from elmo_core.training.host_planner import FRAMEWORK_HOST_BYTES

STATS = {
    "num_labels": 1000,
    "train": {"points": 2000, "positives": 6000, "avg_text_chars": 120.0, "avg_text_words": 20.0},
    "test": {"points": 500, "positives": 1500},
    "labels": {"avg_text_chars": 20.0},
}


def test_parts_match_the_documented_formulas() -> None:
    config = TrainConfig.model_validate({"encoder": {"name": "tfidf", "dim": 64}})
    plan = plan_host_memory(config, STATS)
    assert plan.framework == FRAMEWORK_HOST_BYTES
    assert plan.texts == 2500 * (120 + 80) + 1000 * (20 + 80)
    assert plan.labels == 16 * 7500
    assert plan.inputs == int(2500 * 20 * 2.5 * 8)
    neighbours = int(2000 * 20 * 2.5 * 16) + 8 * 6000
    label_text = 1000 * 20 * 3 * 16
    assert plan.priors == neighbours + label_text
    largest = max(500, min(2000, 10_000))
    candidates, k = config.fusion.candidates, config.fusion.neighbours
    assert plan.evaluation == largest * candidates * 12 + largest * (candidates + k) * 8
    head = 1000 * 65 * 1 + round(config.head.head_ratio * 1000) * 65 * 2
    table = config.encoder.tfidf.max_features * 64
    # the CPU's default two members: each one's head and table with its two moments (fp32),
    # and the merged model built at each save; on a GPU one member
    assert plan.model_copies == 2 * (head + table * 12) + 2 * (head + table * 4)
    assert plan_host_memory(config, STATS, "cuda").model_copies == head + table * 12
    three = config.model_copy(update={"members": 3})
    assert plan_host_memory(three, STATS, "cuda").model_copies == 3 * (head + table * 12) + 3 * (
        head + table * 4
    )
    assert plan.total_bytes == sum(plan.to_dict()[p] for p in plan.to_dict() if p != "total_bytes")


def test_priors_off_and_more_points_change_only_their_parts() -> None:
    config = TrainConfig.model_validate({"fusion": {"label_text_weight": 0, "neighbour_weight": 0}})
    plan = plan_host_memory(config, STATS)
    assert plan.priors == 0
    bigger = {**STATS, "train": {**STATS["train"], "points": 20_000, "positives": 60_000}}
    big = plan_host_memory(config, bigger)
    assert big.texts > plan.texts and big.inputs > plan.inputs and big.labels > plan.labels
    assert big.model_copies == plan.model_copies and big.framework == plan.framework
    assert plan.fits(plan.total_bytes) and not plan.fits(plan.total_bytes - 1)


def test_features_only_dataset_has_no_text_parts() -> None:
    stats = {
        "num_labels": 10,
        "train": {"points": 100, "positives": 300, "avg_features_per_point": 12.0},
        "test": None,
        "labels": {},
    }
    config = TrainConfig.model_validate({"encoder": {"name": "features", "dim": 8}})
    plan = plan_host_memory(config, stats)
    assert plan.texts == 0 and plan.priors == 0
    assert plan.inputs == int(100 * 12.0 * 8)
