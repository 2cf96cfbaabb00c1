"""Members stepped side by side on the CPU: one thread ("lane") per member, each with its share of
the cores.

The members of `TrainConfig.members` train independently: member m's encoder, head, loss and
optimiser rows are its own, and only the evaluation reads them together. Stepped one after
another, each member's step runs its products and fused kernels on all the cores, and between them
a few dozen small passes and Python lines that keep one core busy and leave the others waiting: on
the 2-core VMs a training step with two threads took only ~10% less time than with one. A lane is
a thread with its own torch/oneDNN and numba thread count (`threads // lanes`), so M members step
at once, each on its cores, and the small work of one overlaps the products of the other (torch's
ops and the numba kernels release the GIL). docs/training.md ("Members") gives the measurements.

What a member computes does not depend on its lane: the dropout masks come from each member's
own generator (`MemberEncoders.generators`), the head's rounding from its own seed, the optimiser
rows from its own tables. With the same threads per member the models are bit for bit those of
the members stepped one after another (tested); with other thread counts the products' kernels,
and with them the last bits, may differ, as between any two thread counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from elmo_core.float_bits import use_torch_threads

T = TypeVar("T")


def lane_count(members: int, threads: int, requested: int | None) -> int:
    """How many lanes step `members` members on `threads` CPU threads: `requested` (at most one
    per member), by default one per member while each keeps a thread (`min(members, threads)`);
    1 steps them one after another on every thread."""
    if requested is not None:
        return max(1, min(requested, members))
    return max(1, min(members, threads))


class MemberLanes:
    """`lanes` threads, each running its calls on `threads_per_lane` torch and numba threads."""

    def __init__(self, lanes: int, threads_per_lane: int) -> None:
        if lanes < 2 or threads_per_lane < 1:
            raise ValueError(f"need 2+ lanes of 1+ threads, got {lanes} x {threads_per_lane}")
        self.lanes, self.threads_per_lane = int(lanes), int(threads_per_lane)
        caller_threads = torch.get_num_threads()
        started = threading.Barrier(self.lanes)
        self._pool = ThreadPoolExecutor(
            self.lanes, thread_name_prefix="elmo-member-lane", initializer=self._start_lane
        )
        # every lane thread starts (and sets its thread counts) before the first step
        for waited in [self._pool.submit(started.wait) for _ in range(self.lanes)]:
            waited.result()
        # torch.set_num_threads also sets the default of threads that start later: put it back
        torch.set_num_threads(caller_threads)

    def _start_lane(self) -> None:
        """A lane's own torch/oneDNN/MKL and numba thread counts (per-thread settings)."""
        torch.set_num_threads(self.threads_per_lane)
        use_torch_threads()  # fixes this thread's count before __init__ resets the default

    def map(self, step: Callable[[int], T], members: int) -> list[T]:
        """`step(m)` for every member m on the lanes; the results in member order (the first
        error raised, if any, after every call has ended)."""
        futures = [self._pool.submit(step, m) for m in range(members)]
        results = []
        error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # re-raised once all have ended
                error = error or exc
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        """End the lane threads (idempotent)."""
        self._pool.shutdown(wait=True)
