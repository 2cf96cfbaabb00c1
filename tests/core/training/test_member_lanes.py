"""`MemberLanes`: each lane runs on its own thread counts, the caller's stay as they were, results
come back in member order, an error is raised once every member's call has ended, and a lane
runs its queued steps in order without waiting for the other lanes."""

from __future__ import annotations

import threading

import numba
import pytest
import torch

from elmo_core.training.member_lanes import MemberLanes, lane_count


def test_lane_count_is_one_per_member_while_each_keeps_a_thread():
    assert lane_count(members=2, threads=2, requested=None) == 2
    assert lane_count(members=2, threads=16, requested=None) == 2
    assert lane_count(members=3, threads=2, requested=None) == 2
    assert lane_count(members=2, threads=1, requested=None) == 1
    assert lane_count(members=2, threads=16, requested=1) == 1
    assert lane_count(members=2, threads=16, requested=4) == 2


def test_lanes_run_on_their_own_thread_counts_and_leave_the_callers():
    caller = torch.get_num_threads()
    lanes = MemberLanes(2, 1)
    try:
        seen = lanes.submit(
            lambda m: (m, torch.get_num_threads(), numba.get_num_threads()), 3
        ).result()
        assert seen == [(0, 1, 1), (1, 1, 1), (2, 1, 1)]
        assert torch.get_num_threads() == caller
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [caller]  # a thread started afterwards gets the caller's default
    finally:
        lanes.close()


def test_an_error_is_raised_after_every_member_has_ended():
    finished = threading.Event()
    started = threading.Barrier(2)

    def step(m: int) -> int:
        started.wait(timeout=30)  # both members are running at once
        if m == 0:
            raise ValueError("member 0 failed")
        finished.set()
        return m

    lanes = MemberLanes(2, 1)
    try:
        with pytest.raises(ValueError, match="member 0 failed"):
            lanes.submit(step, 2).result()
        assert finished.is_set()
    finally:
        lanes.close()


def test_lanes_need_two_lanes_of_a_thread_or_more():
    with pytest.raises(ValueError, match="2\\+ lanes of 1\\+ threads"):
        MemberLanes(1, 4)


def test_a_lane_runs_its_queued_steps_in_order_while_another_lane_is_busy():
    """Member 1's first step blocks; member 0 runs its three queued steps meanwhile; then member
    1 runs its own in order, and every step's results come back whole."""
    release = threading.Event()
    ran: list[tuple[int, int]] = []

    def step_of(index: int):
        def step(m: int) -> tuple[int, int]:
            if m == 1 and index == 0:
                assert release.wait(timeout=30)
            ran.append((m, index))
            return (m, index)

        return step

    lanes = MemberLanes(2, 1)
    try:
        queued = [lanes.submit(step_of(index), 2) for index in range(3)]
        for _ in range(3000):  # member 0's steps end while member 1's first is blocked
            if [r for r in ran if r[0] == 0] == [(0, 0), (0, 1), (0, 2)]:
                break
            threading.Event().wait(0.01)
        assert ran == [(0, 0), (0, 1), (0, 2)]
        release.set()
        assert [q.result() for q in queued] == [[(0, i), (1, i)] for i in range(3)]
        assert [r for r in ran if r[0] == 1] == [(1, 0), (1, 1), (1, 2)]
    finally:
        release.set()
        lanes.close()
