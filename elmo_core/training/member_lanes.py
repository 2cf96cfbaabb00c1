"""Members stepped side by side on the CPU: one thread ("lane") per member, each with its share of
the cores.

The members of `TrainConfig.members` train independently: member m's encoder, head, loss and
optimiser rows are its own, and only the evaluation reads them together. Stepped one after
another, each member's step runs its products and fused kernels on all the cores, and between them
a few dozen small passes and Python lines that keep one core busy and leave the others waiting: on
the 2-core VMs a training step with two threads took only ~10% less time than with one. A lane is
a thread with its own torch/oneDNN and numba thread count (`threads // lanes`), so M members step
at once, each on its cores, and the small work of one overlaps the products of the other (torch's
ops and the numba kernels release the GIL). Each lane runs its members' calls in the order they
were queued, and the trainer queues a few steps ahead (`recipe.LANE_LEAD`), so a lane whose step
ended first goes on with its next one instead of waiting for the slower lane at every step.
docs/training.md ("Members") gives the measurements.

What a member computes does not depend on its lane: the dropout masks come from each member's
own generator (`MemberEncoders.generators`), the head's rounding from its own seed, the optimiser
rows from its own tables. With the same threads per member the models are bit for bit those of
the members stepped one after another (tested); with other thread counts the products' kernels,
and with them the last bits, may differ, as between any two thread counts.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

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


class LaneStep(Generic[T]):
    """One call of every member submitted to the lanes (`MemberLanes.submit`)."""

    def __init__(self, futures: list[tuple[list[int], Future[list[T]]]], members: int) -> None:
        self.futures, self.members = futures, members

    def result(self) -> list[T]:
        """The members' results in member order, once every lane has run its members' calls
        (the first error raised, if any, once every lane has ended; a lane stops at its first
        failing call)."""
        results: list[T | None] = [None] * self.members
        error: BaseException | None = None
        for members, future in self.futures:
            try:
                for m, value in zip(members, future.result(), strict=True):
                    results[m] = value
            except BaseException as exc:  # re-raised once all have ended
                error = error or exc
        if error is not None:
            raise error
        return results  # type: ignore[return-value]


class MemberLanes:
    """`lanes` threads, each running its calls on `threads_per_lane` torch and numba threads.

    Member m runs on lane `m % lanes`, and each lane runs its calls in the order they were
    submitted: a caller may submit a step's calls before the previous step's have ended, and
    each member's steps still run one after another, in order. A lane then goes on with its next
    step instead of waiting for the slower lane at every step."""

    def __init__(self, lanes: int, threads_per_lane: int) -> None:
        if lanes < 2 or threads_per_lane < 1:
            raise ValueError(f"need 2+ lanes of 1+ threads, got {lanes} x {threads_per_lane}")
        self.lanes, self.threads_per_lane = int(lanes), int(threads_per_lane)
        caller_threads = torch.get_num_threads()
        self._pools = [
            ThreadPoolExecutor(
                1, thread_name_prefix=f"elmo-member-lane-{lane}", initializer=self._start_lane
            )
            for lane in range(self.lanes)
        ]
        # every lane thread starts (and sets its thread counts) before the first step
        for started in [pool.submit(int) for pool in self._pools]:
            started.result()
        # torch.set_num_threads also sets the default of threads that start later: put it back
        torch.set_num_threads(caller_threads)

    def _start_lane(self) -> None:
        """A lane's own torch/oneDNN/MKL and numba thread counts (per-thread settings)."""
        torch.set_num_threads(self.threads_per_lane)
        use_torch_threads()  # fixes this thread's count before __init__ resets the default

    def submit(self, step: Callable[[int], T], members: int) -> LaneStep[T]:
        """Queue `step(m)` for every member m on its lane (after the calls queued before);
        returns at once."""
        futures = []
        for lane, pool in enumerate(self._pools):
            mine = list(range(lane, members, self.lanes))
            if mine:
                futures.append((mine, pool.submit(_run_in_turn, step, mine)))
        return LaneStep(futures, members)

    def close(self) -> None:
        """End the lane threads once their queued calls have run (idempotent)."""
        for pool in self._pools:
            pool.shutdown(wait=True)


def _run_in_turn(step: Callable[[int], T], members: list[int]) -> list[T]:
    """`step(m)` for each of a lane's members, one after another."""
    return [step(m) for m in members]
