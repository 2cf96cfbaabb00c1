"""`BackgroundWriter`: a checkpoint or model written on a background thread holds the run as it
was when submitted (host copies, frozen JSON), the writes go one at a time, the last is current
once `wait` returns, and a failure reaches the caller's thread."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from elmo_core.training.background_writes import BackgroundWriter, frozen
from elmo_core.training.checkpoint import load_checkpoint, save_checkpoint


def _submit(writer: BackgroundWriter, root: Path, step: int, tensors: dict, state: dict) -> None:
    copies, saved = writer.host_copies(tensors), frozen(state)
    writer.submit(lambda: save_checkpoint(root, step, copies, saved))


def test_the_written_checkpoint_holds_the_tensors_and_state_as_submitted(tmp_path: Path) -> None:
    writer = BackgroundWriter("test")
    weights = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    fp8 = torch.linspace(-2, 2, 8).to(torch.float8_e4m3fn)
    state = {"epoch": 1, "history": [{"P@1": 50.0}]}
    _submit(writer, tmp_path, 7, {"w": weights.t(), "f": fp8}, state)  # a transposed view too
    expected_w, expected_f = weights.t().clone(), fp8.clone()
    weights.add_(100.0)  # the training goes on changing its tensors and its state
    fp8.zero_()
    state["history"].append({"P@1": 60.0})
    writer.wait()
    tensors, saved, current = load_checkpoint(tmp_path)
    assert current == tmp_path / "step-00000007"
    assert torch.equal(tensors["w"], expected_w)
    assert tensors["f"].dtype == torch.float8_e4m3fn
    assert torch.equal(tensors["f"].view(torch.uint8), expected_f.view(torch.uint8))
    assert saved == {"epoch": 1, "history": [{"P@1": 50.0}]}


def test_writes_go_one_at_a_time_and_the_last_is_current(tmp_path: Path) -> None:
    writer = BackgroundWriter("test")
    for step in (1, 2, 3):
        _submit(writer, tmp_path, step, {"x": torch.full((1000,), float(step))}, {"step": step})
    writer.wait()
    tensors, state, folder = load_checkpoint(tmp_path)
    assert folder.name == "step-00000003" and state == {"step": 3}
    assert torch.equal(tensors["x"], torch.full((1000,), 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step-00000003"]
    pointer = json.loads((tmp_path / "latest.json").read_text())
    assert pointer == {"checkpoint": "step-00000003", "step": 3}


def test_host_copies_reuse_the_previous_writes_buffers_once_it_is_done(tmp_path: Path) -> None:
    writer = BackgroundWriter("test")
    release = threading.Event()
    first = writer.host_copies({"x": torch.full((4,), 1.0), "y": torch.zeros(2)})
    read: list[torch.Tensor] = []

    def slow_write() -> None:  # reads its copy only after the next host_copies was asked for
        release.wait(timeout=30)
        read.append(first["x"].clone())

    writer.submit(slow_write)
    threading.Timer(0.2, release.set).start()
    second = writer.host_copies({"x": torch.full((4,), 2.0), "y": torch.zeros(3)})
    assert torch.equal(read[0], torch.full((4,), 1.0))  # copied only after the write was done
    assert second["x"].data_ptr() == first["x"].data_ptr()  # same name, shape, dtype: reused
    assert torch.equal(second["x"], torch.full((4,), 2.0))
    assert second["y"].shape == (3,)  # another shape: a new buffer
    view = torch.arange(6.0).reshape(2, 3).t()
    third = writer.host_copies({"x": view.to(torch.bfloat16)})
    assert third["x"].is_contiguous() and torch.equal(third["x"], view.to(torch.bfloat16))


def test_a_failed_write_is_raised_by_wait_and_leaves_the_previous_checkpoint(
    tmp_path: Path,
) -> None:
    writer = BackgroundWriter("test")
    _submit(writer, tmp_path, 1, {"x": torch.ones(3)}, {"step": 1})
    writer.wait()
    # a file where the writer puts its temporary folder: removing it as a folder fails
    (tmp_path / ".step-00000002.tmp").write_text("not a folder")
    _submit(writer, tmp_path, 2, {"x": torch.zeros(3)}, {"step": 2})
    with pytest.raises(NotADirectoryError):
        writer.wait()
    writer.wait()  # raised once
    tensors, saved, folder = load_checkpoint(tmp_path)
    assert folder.name == "step-00000001" and saved == {"step": 1}
    assert torch.equal(tensors["x"], torch.ones(3))


def test_a_failed_write_is_raised_by_the_next_submit(tmp_path: Path) -> None:
    writer = BackgroundWriter("test")

    def fail() -> None:
        raise OSError(28, "No space left on device")

    writer.submit(fail)
    with pytest.raises(OSError, match="No space left"):
        writer.submit(lambda: None)
    writer.wait()
