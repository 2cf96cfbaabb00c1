"""`map_chunks`: results in chunk order whatever the worker count; shared state goes by fork."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

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


def _slow_task(shared: dict, index: int) -> tuple[str, int]:
    time.sleep(0.05)  # keeps both calls' pools alive together; the result does not depend on it
    return shared["name"], index


@pytest.mark.skipif(not can_fork(), reason="needs fork")
def test_calls_from_two_threads_at_once_each_get_their_own_shared_state() -> None:
    with ThreadPoolExecutor(2) as threads:
        calls = [
            threads.submit(map_chunks, _slow_task, {"name": name}, 6, 2) for name in ("a", "b")
        ]
        results = [call.result() for call in calls]
    assert results == [[("a", i) for i in range(6)], [("b", i) for i in range(6)]]
