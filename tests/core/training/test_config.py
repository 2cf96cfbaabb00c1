"""TrainConfig: typed sections, unknown keys rejected, JSON round trip, clear errors."""

from __future__ import annotations

import json
import re

import pytest

from elmo_core.config import (
    CPU_GRADIENT_FLOOR,
    CPU_LOG_EVERY,
    CPU_MEMBERS,
    default_gradient_floor,
    default_members,
)
from elmo_core.errors import ConfigError
from elmo_core.training import TrainConfig, load_config, parse_config


def test_defaults_round_trip_through_json(tmp_path):
    config = TrainConfig()
    path = tmp_path / "c.json"
    path.write_text(config.to_json())
    assert load_config(path) == config
    raw = json.loads(config.to_json())
    assert set(raw) >= {"data", "encoder", "precision", "head", "schedule", "epochs", "eval"}
    assert raw["precision"] == "fp8" and raw["encoder"]["name"] == "tfidf"


def test_unknown_and_invalid_fields_are_named():
    with pytest.raises(ConfigError, match=r"schedule\.head_lrr"):
        parse_config({"schedule": {"head_lrr": 1.0}})
    with pytest.raises(ConfigError, match="precision"):
        parse_config({"precision": "fp4"})
    with pytest.raises(ConfigError, match=r"encoder\.name"):
        parse_config({"encoder": {"name": "bert"}})
    with pytest.raises(ConfigError, match="epochs"):
        parse_config({"epochs": 0})
    assert parse_config({"encoder": {"name": "hf:/models/x"}}).encoder.name == "hf:/models/x"


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 3,\n oops}')
    with pytest.raises(ConfigError, match=r"bad\.json:2"):
        load_config(bad)


def test_encoder_lr_defaults_to_the_encoder_kind_and_an_explicit_value_wins():
    assert TrainConfig().encoder_lr == 1e-3
    assert parse_config({"encoder": {"name": "features"}}).encoder_lr == 1e-3
    assert parse_config({"encoder": {"name": "minilm"}}).encoder_lr == 1e-4
    assert parse_config({"encoder": {"name": "hf:/m"}}).encoder_lr == 1e-4
    explicit = {"encoder": {"name": "minilm"}, "schedule": {"encoder_lr": 3e-5}}
    assert parse_config(explicit).encoder_lr == 3e-5
    assert json.loads(TrainConfig().to_json())["schedule"]["encoder_lr"] is None
    with pytest.raises(ConfigError, match=r"schedule\.encoder_lr"):
        parse_config({"schedule": {"encoder_lr": 0}})


def test_members_need_a_plain_sparse_encoder():
    assert TrainConfig().members is None
    assert parse_config({"members": 2, "encoder": {"name": "features"}}).members == 2
    with pytest.raises(ConfigError, match=r"members 2 needs a sparse encoder.*'minilm'"):
        parse_config({"members": 2, "encoder": {"name": "minilm"}})
    with pytest.raises(ConfigError, match="without mlp_layers"):
        parse_config({"members": 3, "encoder": {"mlp_layers": 1}})
    assert parse_config({"members": 1, "encoder": {"name": "minilm"}}).members == 1
    with pytest.raises(ConfigError, match="members"):
        parse_config({"members": 0})


def test_device_defaults_two_members_a_gradient_floor_and_rarer_loss_logs_on_the_cpu_only():
    tfidf = TrainConfig().encoder
    assert default_members("cpu", tfidf) == CPU_MEMBERS == 2
    assert default_members("cuda", tfidf) == 1
    assert default_members("cpu", parse_config({"encoder": {"name": "minilm"}}).encoder) == 1
    assert default_members("cpu", parse_config({"encoder": {"mlp_layers": 1}}).encoder) == 1
    assert default_gradient_floor("cpu") == CPU_GRADIENT_FLOOR > 0
    assert default_gradient_floor("cuda") == 0.0
    head = TrainConfig().head
    assert head.gradient_floor is None and head.below_floor_rate == 1 / 16
    cpu, notes = TrainConfig().for_device("cpu")
    assert (cpu.batch_size, cpu.members, cpu.head.gradient_floor) == (256, 2, CPU_GRADIENT_FLOOR)
    assert cpu.log_every == CPU_LOG_EVERY == 200
    assert notes == [
        "batch size 256 (cpu default)",
        "members 2 (cpu default)",
        "head gradient floor 0.01 (cpu default)",
        "loss logged every 200 steps (cpu default)",
    ]
    cuda, _ = TrainConfig().for_device("cuda")
    assert (cuda.batch_size, cuda.members, cuda.head.gradient_floor) == (128, 1, 0.0)
    assert cuda.log_every == 50
    set_, notes = parse_config({"batch_size": 64, "members": 1, "log_every": 7}).for_device("cpu")
    assert (set_.batch_size, set_.members, set_.log_every) == (64, 1, 7) and len(notes) == 1
    assert parse_config({"head": {"below_floor_rate": 0}}).head.below_floor_rate == 0
    with pytest.raises(ConfigError, match=r"head\.below_floor_rate.*power of two"):
        parse_config({"head": {"below_floor_rate": 0.1}})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"epochs": 10**400}, "epochs"),
        ({"seed": 2**70}, "seed"),
        ({"threads": 10**12}, "threads"),
        ({"head": {"chunk_size": 0}}, "head.chunk_size"),
        ({"head": {"gradient_floor": 0.7}}, "head.gradient_floor"),
        ({"eval": {"ks": [10**9]}}, "eval.ks"),
        ({"encoder": {"tfidf": {"num_buckets": 2**40}}}, "encoder.tfidf.num_buckets"),
        ({"encoder": {"dim": 10**7}}, "encoder.dim"),
        ({"schedule": {"head_lr": float("nan")}}, "schedule.head_lr"),
        ({"schedule": {"encoder_lr": float("inf")}}, "schedule.encoder_lr"),
        ({"epochs": "1"}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"eval": {"ks": ["5"]}}, "eval.ks"),
    ],
)
def test_out_of_bounds_non_finite_and_loosely_typed_values_are_refused(raw, where):
    """Every number is bounded, floats are finite and integers are integers: a config that
    could never run (or would overflow a planner) is refused up front, naming the field."""
    with pytest.raises(ConfigError, match=rf"config: {re.escape(where)}"):
        parse_config(raw)
