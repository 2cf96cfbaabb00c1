"""Claiming a job and keeping the claim: an atomic state change plus a heartbeat with a fence.

`attempt` is the fencing token: every write a worker makes is conditioned on the attempt it
claimed, so a worker whose job was re-queued (lost heartbeat) can no longer write to it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.core.db import session_scope
from service.models import Job, JobLog, PredictJob


class LeaseLost(Exception):
    """The job was re-queued or finished by someone else: this worker must stop touching it."""


def now() -> datetime:
    """Current UTC time."""
    return datetime.now(timezone.utc)


def claim(session: Session, table: type[Job] | type[PredictJob], job_id: str, worker: str) -> int:
    """Move a queued job to running for this worker; return the new attempt, or 0 if not claimed."""
    row = session.get(table, job_id)
    if row is None or row.state != "queued":
        return 0
    attempt = row.attempt + 1
    values: dict[str, object] = {
        "state": "running",
        "attempt": attempt,
        "heartbeat_at": now(),
    }
    if table is Job:
        if row.cancel_requested:
            return 0
        values.update(worker=worker, started_at=row.started_at or now())
    result = session.execute(
        update(table)
        .where(table.id == job_id, table.state == "queued", table.attempt == attempt - 1)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return attempt if result.rowcount == 1 else 0


def fenced_update(
    session: Session,
    table: type[Job] | type[PredictJob],
    job_id: str,
    attempt: int,
    **values: object,
) -> None:
    """Update a running job this worker holds; raise LeaseLost if it no longer does."""
    result = session.execute(
        update(table)
        .where(table.id == job_id, table.attempt == attempt, table.state == "running")
        .values(**values)
    )
    if result.rowcount != 1:
        raise LeaseLost(job_id)


def add_log(session: Session, job_id: str, message: str) -> None:
    """Append a log line to a training job."""
    session.add(JobLog(job_id=job_id, message=message))


class Heartbeat:
    """A daemon thread that refreshes `heartbeat_at` while a job runs (also in silent phases)."""

    def __init__(
        self,
        db_url: str,
        table: type[Job] | type[PredictJob],
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
                    fenced_update(session, table, job_id, attempt, heartbeat_at=now())
            except LeaseLost:
                self.lost.set()
                return
            except Exception:  # a DB hiccup: try again at the next beat
                continue
