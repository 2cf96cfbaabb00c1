"""Keeping a claim alive: a heartbeat thread that refreshes the lease while a job runs.

The transitions themselves (claim, fenced writes, finish) are `service.jobs.lifecycle`'s; this
thread only calls `lifecycle.heartbeat` every few seconds, also in silent phases.
"""

from __future__ import annotations

import threading

from service.core.db import session_scope
from service.jobs import lifecycle
from service.jobs.lifecycle import JobTable, LeaseLost


class Heartbeat:
    """A daemon thread that refreshes `heartbeat_at` while a job runs (also in silent phases)."""

    def __init__(
        self,
        db_url: str,
        table: JobTable,
        job_id: str,
        attempt: int,
        every: float,
    ) -> None:
        self._args = (db_url, table, job_id, attempt)
        self._every = every
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        db_url, table, job_id, attempt = self._args
        while not self._stop.wait(self._every):
            try:
                with session_scope(db_url) as session:
                    lifecycle.heartbeat(session, table, job_id, attempt)
            except LeaseLost:
                self.lost.set()
                return
            except Exception:  # a DB hiccup: try again at the next beat
                continue
