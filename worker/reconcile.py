"""The reconciler: the database is the source of truth, the broker only a doorbell.

- A running job whose heartbeat is older than the lease (its worker died) goes back to `queued`
  (its next attempt resumes from the last checkpoint) and is sent again.
- A queued job whose message was sent long ago and never claimed (a broker lost it) is sent again.
Duplicate messages are harmless: a worker runs a job only after claiming it atomically.
"""

from __future__ import annotations

import logging
import threading

from service.core.config import Settings
from service.core.db import session_scope
from service.jobs import lifecycle
from service.queue import Dispatcher

log = logging.getLogger(__name__)


def reconcile(settings: Settings, dispatcher: Dispatcher) -> dict[str, list[str]]:
    """One pass; returns the ids re-queued (`requeued`) and re-sent (`resent`).

    The state changes are `service.jobs.lifecycle`'s; this pass commits them, then rings the
    broker for each job.
    """
    with session_scope(settings.effective_database_url) as session:
        lost = lifecycle.requeue_lost(
            session, settings.job_lease_seconds, settings.max_job_attempts
        )
        waiting = lifecycle.due_for_resend(session, settings.requeue_queued_after_seconds)
    send = {"train": dispatcher.send_train, "predict": dispatcher.send_predict}
    for kind, job_id in [*lost, *waiting]:
        try:
            send[kind](job_id)
        except Exception:
            log.exception("reconciler: cannot send job %s", job_id)
    requeued = [job_id for _, job_id in lost]
    resent = [job_id for _, job_id in waiting]
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
