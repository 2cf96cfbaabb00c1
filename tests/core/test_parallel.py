"""`map_chunks`: results in chunk order whatever the worker count; shared state goes by fork."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from elmo_core.parallel import allow_children, can_fork, map_chunks, worker_count


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


def _pid_task(_: None, index: int) -> int:
    return os.getpid()


def _daemonic_job(results: multiprocessing.Queue) -> None:
    before = can_fork()
    allow_children()
    pids = map_chunks(_pid_task, None, 4, workers=2)
    results.put((before, can_fork(), os.getpid(), set(pids)))


@pytest.mark.skipif(not can_fork(), reason="needs fork")
def test_a_daemonic_process_forks_workers_once_it_allows_children() -> None:
    """As a Celery prefork pool child does for its job (worker/main.py)."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    job = context.Process(target=_daemonic_job, args=(results,), daemon=True)
    job.start()
    before, after, job_pid, pids = results.get(timeout=120)
    job.join(timeout=60)
    assert (before, after) == (False, True)
    assert pids and job_pid not in pids and job.exitcode == 0


def _sleeping_task(folder: Path, index: int) -> None:
    (folder / f"{os.getpid()}.pid").write_text("")
    time.sleep(120)


def _job_with_sleeping_workers(folder: Path) -> None:
    map_chunks(_sleeping_task, folder, 2, workers=2)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, ended but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(
    not can_fork() or not sys.platform.startswith("linux"), reason="needs fork and Linux"
)
def test_workers_die_with_a_killed_job(tmp_path: Path) -> None:
    """A SIGKILLed job (a lost worker) leaves no map_chunks workers behind."""
    job = multiprocessing.get_context("fork").Process(
        target=_job_with_sleeping_workers, args=(tmp_path,)
    )
    job.start()
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(path.stem) for path in tmp_path.glob("*.pid")]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    assert job.pid is not None
    os.kill(job.pid, signal.SIGKILL)
    job.join(timeout=60)
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)
