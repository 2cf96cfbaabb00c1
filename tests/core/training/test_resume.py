"""Interrupted-and-resumed CPU run ends with exactly the metrics of an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from elmo_core.training import CheckpointError, TrainerCallbacks, TrainingCancelled, train


class StopAfter(TrainerCallbacks):
    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.seen = 0

    def should_stop(self) -> bool:
        self.seen += 1
        return self.seen >= self.steps


@pytest.mark.parametrize(("precision", "members"), [("fp8", 1), ("bf16", 1), ("fp8", 2)])
def test_resume_mid_epoch_matches_uninterrupted(
    mini_dataset, tmp_path, precision, members, small_config
):
    config = small_config(precision=precision, head={"head_ratio": 0.1}, members=members)
    full = train(config, mini_dataset, tmp_path / "full")
    with pytest.raises(TrainingCancelled) as stopped:
        train(config, mini_dataset, tmp_path / "cut", StopAfter(5))
    assert stopped.value.step == 5
    pointer = json.loads((tmp_path / "cut" / "checkpoints" / "latest.json").read_text())
    assert pointer == {"checkpoint": "step-00000005", "step": 5}
    resumed = train(config, mini_dataset, tmp_path / "cut", resume=True)
    assert resumed.steps == full.steps == 16
    assert resumed.history == full.history
    assert resumed.metrics == full.metrics and resumed.epoch == full.epoch
    a = load_file(str(full.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_checkpoint_holds_head_kahan_optimizer_rng(mini_dataset, tmp_path, small_config):
    config = small_config(
        head={"head_ratio": 0.1}, checkpoint={"every_steps": 3}, epochs=1, members=1
    )
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path, StopAfter(4))
    folder = tmp_path / "checkpoints" / "step-00000004"
    tensors = load_file(str(folder / "tensors.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    assert tensors["head.weight"].dtype == torch.float8_e4m3fn
    assert tensors["head.compensation"].dtype == torch.bfloat16
    assert int(tensors["head.step"]) == 4
    assert tensors["encoder.embedding.weight"].dtype == torch.bfloat16
    assert any(k.endswith(".kahan_comp") for k in tensors)
    assert any(k.endswith(".exp_avg_sq") for k in tensors)
    assert "rng.torch" in tensors
    assert state["epoch"] == 0 and state["step_in_epoch"] == 4 and state["global_step"] == 4
    assert set(state["rng"]) == {"numpy", "python"}
    assert not list((tmp_path / "checkpoints").glob("step-00000003"))


def test_resume_refuses_a_different_config(mini_dataset, tmp_path, small_config):
    with pytest.raises(TrainingCancelled):
        train(small_config(), mini_dataset, tmp_path, StopAfter(2))
    with pytest.raises(CheckpointError, match="batch_size"):
        train(small_config(batch_size=16), mini_dataset, tmp_path, resume=True)


def test_resume_without_checkpoint_is_a_clear_error(mini_dataset, tmp_path, small_config):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(small_config(), mini_dataset, tmp_path, resume=True)


def test_resume_with_a_transformer_encoder(mini_dataset, tmp_path, small_config, tiny_bert_dir):
    """The transformer's pure-BF16 weights, Kahan AdamW states and dropout RNG survive a resume."""
    config = small_config(encoder={"name": f"hf:{tiny_bert_dir}", "max_length": 32})
    full = train(config, mini_dataset, tmp_path / "full")
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path / "cut", StopAfter(11))
    resumed = train(config, mini_dataset, tmp_path / "cut", resume=True)
    assert resumed.history == full.history
    a = load_file(str(full.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    assert any(key.startswith("encoder.model.") for key in a)
    assert a["encoder.model.embeddings.word_embeddings.weight"].dtype == torch.bfloat16
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_resume_point_exists_while_an_epoch_is_evaluated(mini_dataset, tmp_path, small_config):
    """A crash during the second epoch's evaluation or model save can resume from the end of
    the first epoch: its checkpoint is still there (removed only when the run finishes)."""
    seen: list[tuple[int, bool]] = []

    class Watch(TrainerCallbacks):
        def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
            seen.append((epoch, (tmp_path / "run" / "checkpoints" / "latest.json").exists()))

    train(small_config(eval={"every_epoch": True}), mini_dataset, tmp_path / "run", Watch())
    assert seen == [(1, False), (2, True)]  # nothing to resume from before the first epoch ends
    assert not (tmp_path / "run" / "checkpoints").exists()  # the finished run keeps none


def test_epoch_checkpoints_wait_for_the_minimum_interval(mini_dataset, tmp_path, small_config):
    """With `checkpoint.min_interval_s` longer than the run, no epoch writes a checkpoint (the
    one a cancelled job writes still comes); with 0 every epoch does."""
    seen: list[tuple[int, bool]] = []
    pointer = tmp_path / "run" / "checkpoints" / "latest.json"

    class Watch(TrainerCallbacks):
        def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
            seen.append((epoch, pointer.exists()))

    config = small_config(epochs=3, checkpoint={"min_interval_s": 1e6, "keep": True})
    train(config, mini_dataset, tmp_path / "run", Watch())
    assert seen == [(1, False), (2, False), (3, False)] and not pointer.exists()
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path / "cut", StopAfter(5))
    assert (tmp_path / "cut" / "checkpoints" / "latest.json").exists()
    train(small_config(epochs=3, checkpoint={"keep": True}), mini_dataset, tmp_path / "run")
    assert json.loads(pointer.read_text())["step"] == 3 * 8  # the last epoch's


class CheckpointSteps(StopAfter):
    """`StopAfter`, and at each step's progress the head step counters and the global step of
    the latest checkpoint on disk."""

    def __init__(self, steps: int, folder) -> None:
        super().__init__(steps)
        self.folder = folder
        self.seen_checkpoints: dict[int, tuple[list[int], int]] = {}

    def on_progress(self, progress) -> None:
        pointer = self.folder / "checkpoints" / "latest.json"
        if not pointer.exists():
            return
        name = json.loads(pointer.read_text())["checkpoint"]
        folder = self.folder / "checkpoints" / name
        tensors = load_file(str(folder / "tensors.safetensors"))
        counters = sorted(
            int(v) for k, v in tensors.items() if k.startswith("head.") and k.endswith("step")
        )
        state = json.loads((folder / "state.json").read_text())
        self.seen_checkpoints[state["global_step"]] = (counters, state["step_in_epoch"])


def test_lanes_checkpoint_at_the_step_they_say_and_resume_to_the_same_model(
    mini_dataset, tmp_path, small_config
):
    """Two members on two lanes, which queue steps ahead: the every-4-steps checkpoint and the
    cancel checkpoint (after step 7) hold both members at that step, and the resumed run ends
    with the uninterrupted one's model."""
    config = small_config(members=2, threads=2, member_lanes=2, checkpoint={"every_steps": 4})
    full = train(config, mini_dataset, tmp_path / "full")
    callbacks = CheckpointSteps(7, tmp_path / "cut")
    with pytest.raises(TrainingCancelled) as stopped:
        train(config, mini_dataset, tmp_path / "cut", callbacks)
    assert stopped.value.step == 7
    assert callbacks.seen_checkpoints[4] == ([4, 4], 4)
    folder = tmp_path / "cut" / "checkpoints" / "step-00000007"
    tensors = load_file(str(folder / "tensors.safetensors"))
    assert sorted(
        int(v) for k, v in tensors.items() if k.startswith("head.") and k.endswith("step")
    ) == [7, 7]
    resumed = train(config, mini_dataset, tmp_path / "cut", resume=True)
    assert resumed.history == full.history and resumed.metrics == full.metrics
    a = load_file(str(full.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
