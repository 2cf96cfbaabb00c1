"""Run one training job: claim it, drive `elmo_core.training.train`, record the outcome.

Never re-implements training: everything a run does is the trainer's; this module only moves
state between the trainer's callbacks and the database. A re-queued job (its worker died) resumes
from the checkpoint in its run directory.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from pathlib import Path

from service.core.config import Settings
from service.core.db import session_scope
from service.jobs import JobState, lifecycle
from service.jobs.lifecycle import LeaseLost, add_log
from service.models import Dataset, Job, Model, new_id
from worker.callbacks import DBCallbacks, jsonable
from worker.failures import describe_failure
from worker.lease import Heartbeat

log = logging.getLogger(__name__)
CLAIM_RETRIES = 10


def run_dir(settings: Settings, job_id: str) -> Path:
    """Where a job's checkpoints and model artifact live."""
    return settings.effective_artifacts_dir / "runs" / job_id


def dir_size(path: Path) -> int:
    """Total bytes of the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _claim_with_retry(settings: Settings, job_id: str, worker: str) -> int:
    """Claim the job; the row may be committed a moment after the message arrives."""
    db = settings.effective_database_url
    for _ in range(CLAIM_RETRIES):
        with session_scope(db) as session:
            if session.get(Job, job_id) is not None:
                return lifecycle.claim(session, Job, job_id, worker)
        time.sleep(0.5)
    log.warning("job %s not found; message dropped", job_id)
    return 0


def run_training_job(settings: Settings, job_id: str, worker: str | None = None) -> JobState | None:
    """Run job `job_id` if it can be claimed; return its final state (None if not claimed)."""
    from elmo_core.data import load_dataset
    from elmo_core.training import TrainingCancelled, parse_config, train

    worker = worker or socket.gethostname()
    db = settings.effective_database_url
    attempt = _claim_with_retry(settings, job_id, worker)
    if not attempt:
        return None
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        dataset = session.get(Dataset, job.dataset_id)
        config_raw, owner, name, plan = job.config, job.owner, job.name, job.memory_plan
        dataset_path = dataset.path if dataset is not None else None
        dataset_id = job.dataset_id
    out_dir = run_dir(settings, job_id)
    checkpoints = out_dir / "checkpoints"
    resume = checkpoints.is_dir() and any(checkpoints.iterdir())
    with session_scope(db) as session:
        msg = f"attempt {attempt} on {worker}"
        add_log(session, job_id, msg + (": resuming from the last checkpoint" if resume else ""))
    heartbeat_every = max(settings.job_lease_seconds / 4, 0.5)
    with Heartbeat(db, Job, job_id, attempt, heartbeat_every) as heartbeat:
        try:
            if dataset_path is None:
                raise FileNotFoundError(f"dataset {dataset_id} was deleted")
            config = parse_config(config_raw, source=f"job {job_id} config")
            callbacks = DBCallbacks(
                db, job_id, attempt, config.epochs, heartbeat, config.eval.split
            )
            callbacks.on_phase("loading")
            dataset_obj = load_dataset(
                dataset_path, format=config.data.format, empty_rows=config.data.empty_rows
            )
            result = train(config, dataset_obj, out_dir, callbacks=callbacks, resume=resume)
            model_id = new_id("mdl")
            model_dir = settings.effective_artifacts_dir / "models" / model_id
            model_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(result.model_dir), str(model_dir))
            metrics = jsonable(result.metrics or {})
            with session_scope(db) as session:
                lifecycle.finish(
                    session,
                    Job,
                    job_id,
                    attempt,
                    JobState.SUCCEEDED,
                    phase=None,
                    model_id=model_id,
                    latest_metrics=metrics,
                    latest_metrics_split=result.split,
                    eta_s=0.0,
                )
                session.add(
                    Model(
                        id=model_id,
                        owner=owner,
                        name=name,
                        job_id=job_id,
                        dataset_id=dataset_id,
                        config=config.model_dump(mode="json"),
                        metrics={
                            "epoch": result.epoch,
                            "split": result.split,
                            "metrics": jsonable(result.metrics),
                            "validation": jsonable(result.validation_metrics),
                        },
                        num_labels=dataset_obj.num_labels,
                        precision=config.precision,
                        size_bytes=dir_size(model_dir),
                        path=str(model_dir),
                    )
                )
                add_log(session, job_id, f"succeeded: model {model_id}")
            return JobState.SUCCEEDED
        except LeaseLost:
            log.warning("job %s: lease lost (re-queued elsewhere); stopping", job_id)
            return None
        except TrainingCancelled as exc:
            state = _finish(db, job_id, attempt, JobState.CANCELLED, None, f"cancelled: {exc}")
        except Exception as exc:
            log.exception("job %s failed", job_id)
            reason = describe_failure(exc, plan)
            state = _finish(db, job_id, attempt, JobState.FAILED, reason, f"failed: {reason}")
    if state is not None:  # a finished job is never resumed: its checkpoints only take disk
        discard_unregistered(out_dir)
    return state


def discard_unregistered(out_dir: Path) -> None:
    """Remove what a job that ended without a model leaves in its run directory and nobody can
    use: the checkpoints and any (complete or half-written) model folder. Frees the disk when
    a full disk is why the job failed."""
    from elmo_core.training.recipe import MODEL

    for leftover in ("checkpoints", MODEL, f".{MODEL}.tmp", f".{MODEL}.old"):
        shutil.rmtree(out_dir / leftover, ignore_errors=True)


def _finish(
    db: str, job_id: str, attempt: int, state: JobState, reason: str | None, msg: str
) -> JobState | None:
    """Write a terminal state (if this worker still holds the job)."""
    try:
        with session_scope(db) as session:
            lifecycle.finish(session, Job, job_id, attempt, state, failure_reason=reason)
            add_log(session, job_id, msg)
    except LeaseLost:
        return None
    return state
