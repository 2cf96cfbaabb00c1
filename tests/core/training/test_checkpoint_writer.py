"""`CheckpointWriter`: a checkpoint written on a background thread holds the run as it was when
submitted, becomes current once written, and its failure reaches the training's thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elmo_core.training.checkpoint import CheckpointWriter, load_checkpoint


def test_the_written_checkpoint_holds_the_tensors_and_state_as_submitted(tmp_path: Path) -> None:
    writer = CheckpointWriter()
    weights = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    fp8 = torch.linspace(-2, 2, 8).to(torch.float8_e4m3fn)
    state = {"epoch": 1, "history": [{"P@1": 50.0}]}
    folder = writer.submit(tmp_path, 7, {"w": weights, "f": fp8}, state)
    expected_w, expected_f = weights.clone(), fp8.clone()
    weights.add_(100.0)  # the training goes on changing its tensors and its state
    fp8.zero_()
    state["history"].append({"P@1": 60.0})
    writer.wait()
    tensors, saved, current = load_checkpoint(tmp_path)
    assert current == folder == tmp_path / "step-00000007"
    assert torch.equal(tensors["w"], expected_w)
    assert tensors["f"].dtype == torch.float8_e4m3fn
    assert torch.equal(tensors["f"].view(torch.uint8), expected_f.view(torch.uint8))
    assert saved == {"epoch": 1, "history": [{"P@1": 50.0}]}


def test_checkpoints_are_written_one_at_a_time_and_the_last_is_current(tmp_path: Path) -> None:
    writer = CheckpointWriter()
    for step in (1, 2, 3):
        writer.submit(tmp_path, step, {"x": torch.full((1000,), float(step))}, {"step": step})
    writer.wait()
    tensors, state, folder = load_checkpoint(tmp_path)
    assert folder.name == "step-00000003" and state == {"step": 3}
    assert torch.equal(tensors["x"], torch.full((1000,), 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step-00000003"]
    pointer = json.loads((tmp_path / "latest.json").read_text())
    assert pointer == {"checkpoint": "step-00000003", "step": 3}


def test_a_failed_write_is_raised_by_wait_and_leaves_the_previous_checkpoint(
    tmp_path: Path,
) -> None:
    writer = CheckpointWriter()
    writer.submit(tmp_path, 1, {"x": torch.ones(3)}, {"step": 1})
    writer.wait()
    # a file where the writer puts its temporary folder: removing it as a folder fails
    (tmp_path / ".step-00000002.tmp").write_text("not a folder")
    writer.submit(tmp_path, 2, {"x": torch.zeros(3)}, {"step": 2})
    with pytest.raises(NotADirectoryError):
        writer.wait()
    writer.wait()  # raised once
    tensors, saved, folder = load_checkpoint(tmp_path)
    assert folder.name == "step-00000001" and saved == {"step": 1}
    assert torch.equal(tensors["x"], torch.ones(3))
