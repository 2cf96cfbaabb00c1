"""The job states: one vocabulary for the database, the API, the routes and the workers.

A `str` enum whose values are the strings stored in the `state` columns and shown by the API, so
neither the schema nor the HTTP contract changes. Both job kinds (training and batch inference)
share it: `queued -> running -> succeeded | failed | cancelled`, `running -> queued` when a worker
is lost (the reconciler re-queues it), `queued -> cancelled` when a queued job is cancelled.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """A job's state; compares, hashes and prints as its value (`JobState.QUEUED == "queued"`)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # Enum hashes the member name; hash like the plain string
        return hash(self.value)

    @property
    def is_terminal(self) -> bool:
        """True for the states a job never leaves."""
        return self in TERMINAL_STATES


ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.RUNNING})
"""A job in one of these may still run (it holds its dataset, a worker may pick it up)."""
TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
)
"""A job in one of these is finished: no transition leaves them."""
