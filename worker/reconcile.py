"""The reconciler: the database is the source of truth, the broker only a doorbell.

- A running job whose heartbeat is older than the lease (its worker died) goes back to `queued`
  (its next attempt resumes from the last checkpoint) and is sent again.
- A queued job whose message was sent long ago and never claimed (a broker lost it) is sent again.
Duplicate messages are harmless: a worker runs a job only after claiming it atomically.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import or_, select, update

from service.core.config import Settings
from service.core.db import session_scope
from service.dispatch import Dispatcher
from service.models import Job, PredictJob
from worker.lease import add_log, now

log = logging.getLogger(__name__)


def reconcile(settings: Settings, dispatcher: Dispatcher) -> dict[str, list[str]]:
    """One pass; returns the ids re-queued (`requeued`) and re-sent (`resent`)."""
    t = now()
    stale = t - timedelta(seconds=settings.job_lease_seconds)
    old = t - timedelta(seconds=settings.requeue_queued_after_seconds)
    requeued: list[str] = []
    resend: list[tuple[str, str]] = []
    with session_scope(settings.effective_database_url) as session:
        for table, kind in ((Job, "train"), (PredictJob, "predict")):
            lost = session.scalars(
                select(table).where(table.state == "running", table.heartbeat_at < stale)
            ).all()
            for job in lost:
                result = session.execute(
                    update(table)
                    .where(
                        table.id == job.id, table.attempt == job.attempt, table.state == "running"
                    )
                    .values(state="queued", enqueued_at=t)
                )
                if result.rowcount == 1:
                    requeued.append(job.id)
                    resend.append((kind, job.id))
                    if table is Job:
                        add_log(
                            session,
                            job.id,
                            f"worker {job.worker} lost (no heartbeat since {job.heartbeat_at}); "
                            "re-queued to resume from the last checkpoint",
                        )
            waiting = session.scalars(
                select(table).where(
                    table.state == "queued",
                    or_(table.enqueued_at.is_(None), table.enqueued_at < old),
                )
            ).all()
            for job in waiting:
                if table is Job and job.cancel_requested:
                    continue
                job.enqueued_at = t
                resend.append((kind, job.id))
    for kind, job_id in resend:
        try:
            if kind == "train":
                dispatcher.send_train(job_id)
            else:
                dispatcher.send_predict(job_id)
        except Exception:
            log.exception("reconciler: cannot send job %s", job_id)
    resent = [job_id for _, job_id in resend if job_id not in requeued]
    if requeued or resent:
        log.info("reconciler: requeued %s, resent %s", requeued, resent)
    return {"requeued": requeued, "resent": resent}


class Reconciler:
    """Runs `reconcile` every `reconcile_interval_seconds` in a daemon thread of the worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="elmo-reconciler", daemon=True)

    def start(self) -> None:
        """Start the loop (first pass immediately)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()

    def _run(self) -> None:
        dispatcher = Dispatcher(self.settings)
        while True:
            try:
                reconcile(self.settings, dispatcher)
            except Exception:
                log.exception("reconciler pass failed")
            if self._stop.wait(self.settings.reconcile_interval_seconds):
                return
