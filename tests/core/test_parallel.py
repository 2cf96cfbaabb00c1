"""`map_chunks`: results in chunk order whatever the worker count; shared state goes by fork."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from elmo_core.parallel import can_fork, map_chunks, worker_count


def _task(shared: dict, index: int) -> tuple[int, float, int]:
    values = shared["values"]
    return index, float(values[index::4].sum()), os.getpid()


def test_results_are_in_chunk_order_and_equal_for_any_worker_count() -> None:
    shared = {"values": np.arange(10_000, dtype=np.float64), "unpicklable": lambda x: x}
    alone = map_chunks(_task, shared, 4, workers=1)
    assert [r[0] for r in alone] == [0, 1, 2, 3]
    assert {r[2] for r in alone} == {os.getpid()}
    forked = map_chunks(_task, shared, 4, workers=2)
    assert [r[:2] for r in forked] == [r[:2] for r in alone]
    if can_fork():
        assert os.getpid() not in {r[2] for r in forked}


def _torch_task(_: None, index: int) -> float:
    return float(torch.ones(1000, 100).sum()) + index


@pytest.mark.skipif(not can_fork(), reason="needs fork")
def test_forked_workers_run_torch_after_the_parent_used_its_threads() -> None:
    torch.ones(2000, 2000).sum()  # start the parent's intra-op threads
    assert map_chunks(_torch_task, None, 3, workers=2) == [100_000.0, 100_001.0, 100_002.0]


def test_worker_count() -> None:
    assert worker_count(3) == 3 and worker_count(0) == 1 and worker_count(None) >= 1
