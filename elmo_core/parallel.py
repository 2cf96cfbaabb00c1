"""Parallel map for the CPU-bound setup phases (featurizing texts, scoring text priors).

`map_chunks(task, shared, num_chunks, workers)` runs `task(shared, i)` for every chunk index i in
forked worker processes and returns the results in chunk order, so the output never depends on
the worker count. `shared` (a fitted featurizer, a train matrix) reaches the workers through the
fork, never pickled; only chunk indices go out and results come back. With one worker, one chunk,
or where forking is unavailable, the tasks run in this process. A worker dies with the process
that forked it (Linux), so a killed job leaves no workers behind.

A daemonic process (a Celery prefork pool child runs each job in one) may not start children;
`allow_children()` lifts that for the process, whose own lifetime bounds its workers'.
`start_forked(target, *args)` starts one such forked process for a longer task of its own.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any, TypeVar

R = TypeVar("R")

_JOBS: dict[int, tuple[Callable[[Any, int], Any], Any]] = {}
"""The running `map_chunks` calls' (task, shared), by call: the workers inherit them through the
fork. Keyed so that calls made from several threads at once do not see each other's."""
_JOB_IDS = itertools.count()


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(requested: int | None = None) -> int:
    """`requested` workers, or every available core when None (at least 1)."""
    return max(1, int(requested)) if requested is not None else available_cores()


def can_fork() -> bool:
    """True where `map_chunks` can fork workers (Linux, and not inside a daemonic process)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    # Daemonic processes may not have children (see `allow_children`).
    return not multiprocessing.current_process().daemon


def allow_children() -> None:
    """Let this process fork `map_chunks` workers although it was started as a daemonic
    process (a Celery prefork pool child): the flag only forbids children outliving it, and
    each worker is ended with its parent (`_start_worker`) and joined before `map_chunks`
    returns. The parent's view of this process does not change."""
    process = multiprocessing.current_process()
    if process.daemon:
        process.daemon = False


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that forked it ends (a killed job's
    workers would otherwise wait on their queue for ever); nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the request
        os._exit(1)


def _start_worker() -> None:
    """A forked worker's start. The OpenMP threads the parent may have started do not exist here,
    and torch's first multi-threaded kernel would wait for them forever: one thread per worker.
    The cycle collector is off: it would otherwise free the parent's unreachable objects in the
    child, CUDA tensors among them, whose release in a forked process aborts it (seen on the
    H200); the tasks' own objects are freed by reference counting. The worker dies with its
    parent (`_die_with_parent`)."""
    _die_with_parent()
    gc.disable()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def start_forked(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    """Fork a process that runs `target(*args)` beside this one, started as `map_chunks`'
    workers are (it dies with this process, no cycle collector, one torch thread); it may call
    `map_chunks` itself. The caller joins it (or terminates it) and reads its result wherever
    `target` put it."""
    process = multiprocessing.get_context("fork").Process(
        target=_run_forked, args=(target, *args), daemon=False
    )
    process.start()
    return process


def _run_forked(target: Callable[..., None], *args: Any) -> None:
    _start_worker()
    target(*args)


def _run_chunk(job: int, index: int) -> Any:
    task, shared = _JOBS[job]
    return task(shared, index)


def map_chunks(
    task: Callable[[Any, int], R], shared: Any, num_chunks: int, workers: int | None = None
) -> list[R]:
    """[task(shared, 0), ..., task(shared, num_chunks - 1)], computed by up to `workers`
    forked processes (None: one per available core)."""
    count = min(worker_count(workers), num_chunks)
    if count <= 1 or not can_fork():
        return [task(shared, index) for index in range(num_chunks)]
    job = next(_JOB_IDS)
    _JOBS[job] = (task, shared)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=count, mp_context=context, initializer=_start_worker
        ) as pool:
            return list(pool.map(partial(_run_chunk, job), range(num_chunks)))
    finally:
        del _JOBS[job]
