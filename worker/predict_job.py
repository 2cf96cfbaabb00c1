"""Run one batch-inference job: read the stored texts, predict in batches, write results JSONL."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

from service.core.config import Settings
from service.core.db import session_scope
from service.errors import is_disk_full
from service.jobs import JobState, lifecycle
from service.jobs.lifecycle import LeaseLost
from service.models import Model, PredictJob
from worker.failures import DISK_FULL
from worker.lease import Heartbeat

log = logging.getLogger(__name__)
BATCH = 256


def run_predict_job(settings: Settings, job_id: str, worker: str | None = None) -> JobState | None:
    """Run predict job `job_id` if it can be claimed; return its final state."""
    from elmo_core.inference import Predictor

    worker = worker or socket.gethostname()
    db = settings.effective_database_url
    attempt = 0
    for _ in range(10):
        with session_scope(db) as session:
            if session.get(PredictJob, job_id) is not None:
                attempt = lifecycle.claim(session, PredictJob, job_id, worker)
                break
        time.sleep(0.5)
    if not attempt:
        return None
    with session_scope(db) as session:
        job = session.get(PredictJob, job_id)
        model = session.get(Model, job.model_id)
        model_path = model.path if model is not None else None
        input_path, k, threshold = Path(job.input_path), job.k, job.threshold
    output = input_path.with_name("results.jsonl")
    every = max(settings.job_lease_seconds / 4, 0.5)
    with Heartbeat(db, PredictJob, job_id, attempt, every):
        try:
            if model_path is None:
                raise FileNotFoundError("the model was deleted")
            predictor = Predictor.load(model_path)
            texts = [json.loads(line) for line in input_path.read_text("utf-8").splitlines()]
            tmp = output.with_suffix(".tmp")
            cancelled = False
            with tmp.open("w", encoding="utf-8") as out:
                for start in range(0, len(texts), BATCH):
                    with session_scope(db) as session:
                        cancelled = lifecycle.poll_cancel(session, job_id, attempt, PredictJob)
                    if cancelled:
                        break
                    batch = texts[start : start + BATCH]
                    preds = predictor.predict(batch, k=k, threshold=threshold)
                    for offset, labels in enumerate(preds):
                        row = {"index": start + offset, "labels": labels}
                        out.write(json.dumps(row) + "\n")
            if cancelled:
                tmp.unlink(missing_ok=True)
                state, reason = JobState.CANCELLED, None
            else:
                tmp.replace(output)
                state, reason = JobState.SUCCEEDED, None
        except LeaseLost:
            return None
        except Exception as exc:
            log.exception("predict job %s failed", job_id)
            output.with_suffix(".tmp").unlink(missing_ok=True)  # no half-written results
            reason = DISK_FULL if is_disk_full(exc) else f"{type(exc).__name__}: {exc}"
            state = JobState.FAILED
    try:
        with session_scope(db) as session:
            lifecycle.finish(
                session,
                PredictJob,
                job_id,
                attempt,
                state,
                failure_reason=reason,
                output_path=str(output) if state == JobState.SUCCEEDED else None,
            )
    except LeaseLost:
        return None
    return state
