"""A tiny local BERT (`hf:PATH`) trained through the recipe, saved and reloaded for prediction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

transformers = pytest.importorskip("transformers")

from elmo_core.data import load_dataset  # noqa: E402
from elmo_core.inference import Predictor  # noqa: E402
from elmo_core.training import TrainConfig, TrainerCallbacks, train  # noqa: E402

MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"


class LogCollector(TrainerCallbacks):
    """Keeps the recipe's log lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, message: str) -> None:
        self.lines.append(message)


def test_hf_encoder_trains_saves_and_predicts(tiny_bert_dir, tmp_path):
    run_config = TrainConfig.model_validate(
        {
            "encoder": {"name": f"hf:{tiny_bert_dir}", "max_length": 32},
            "precision": "bf16",
            "epochs": 1,
            "batch_size": 40,
            "data": {"max_train_points": 80, "max_test_points": 20},
            "device": "cpu",
        }
    )
    dataset = load_dataset(MINI, empty_rows="keep")
    logs = LogCollector()
    result = train(run_config, dataset, tmp_path / "run", logs)
    assert any("pure-BF16 transformer trains slowly" in line for line in logs.lines)
    assert run_config.encoder_lr == 1e-4
    assert (result.model_dir / "encoder" / "tokenizer.json").exists()
    assert not list(result.model_dir.rglob("*.bin")) and not list(result.model_dir.rglob("*.pt"))
    predictor = Predictor.load(result.model_dir)
    assert predictor.model.encoder.dim == 17
    # On CPU the BF16-trained transformer runs in fp32: an exact upcast of the stored weights.
    stored = load_file(str(result.model_dir / "model.safetensors"))
    for name, param in predictor.model.encoder.named_parameters():
        assert stored[f"encoder.{name}"].dtype == torch.bfloat16
        assert param.dtype == torch.float32
        assert torch.equal(param.detach(), stored[f"encoder.{name}"].float())
    texts = ["python library", "perl data"]
    first = predictor.predict(texts, k=4)
    again = Predictor.load(result.model_dir).predict(texts, k=4)
    assert first == again and len(first[0]) == 4
