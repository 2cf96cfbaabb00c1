"""The job state machine's transitions: the one module that moves a job from state to state.

Routes call the submit/cancel side (`submit_training_job`, `submit_predict_job`, `request_cancel`);
workers call the claim/fence/finish side (`claim`, `fenced_update`, `heartbeat`, `finish`,
`poll_cancel`) and the reconciler the requeue side (`requeue_lost`, `due_for_resend`).

`attempt` is the fencing token: every write a worker makes is conditioned on the attempt it
claimed, so a worker whose job was re-queued (lost heartbeat) can no longer write to it.

Idempotency (both job kinds): a POST with an `Idempotency-Key` creates at most one job per
(owner, key). Repeating the same request returns the job it created (`Submitted.replayed`); the
same key with a different request is an `IdempotencyConflict` (409). A unique constraint makes
this hold under concurrent requests too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import CursorResult, Update, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.core.encoder_policy import check_encoder_allowed
from service.core.planning import plan_for, worker_gpu_for
from service.core.quotas import check_active_jobs
from service.crud import get_owned
from service.errors import Conflict, Unprocessable
from service.jobs.states import TERMINAL_STATES, JobState
from service.models import Dataset, Job, JobLog, Model, PredictJob, new_id, utcnow
from service.queue import Dispatcher
from service.schemas import JobCreate

log = logging.getLogger(__name__)

AnyJob = TypeVar("AnyJob", Job, PredictJob)
JobTable = type[Job] | type[PredictJob]
KINDS: tuple[tuple[JobTable, str], ...] = ((Job, "train"), (PredictJob, "predict"))
"""Each job table and the queue kind its messages go to."""


def _changed(session: Session, statement: Update) -> int:
    """The rows a conditional UPDATE changed: 1 when its compare-and-set won, 0 when not."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


class LeaseLost(Exception):
    """The job was re-queued or finished by someone else: this worker must stop touching it."""


class IdempotencyConflict(Conflict):
    """An Idempotency-Key already used by this owner with a different request (409)."""


@dataclass
class Submitted(Generic[AnyJob]):
    """The job a submit call returns, and whether it is the replay of an earlier request."""

    job: AnyJob
    replayed: bool = False


def add_log(session: Session, job_id: str, message: str) -> None:
    """Append a log line to a training job."""
    session.add(JobLog(job_id=job_id, message=message))


# --- create (the API) ---------------------------------------------------------------------------


def submit_training_job(
    session: Session,
    dispatcher: Dispatcher,
    settings: Settings,
    owner: str,
    request: JobCreate,
    idempotency_key: str | None = None,
) -> Submitted[Job]:
    """Queue a training job: replay its key, check it fits the workers' GPU, commit, enqueue.

    Raises NotFound (unknown dataset), Unprocessable with the memory plan (it does not fit) and
    IdempotencyConflict (the key was used with a different request).
    """
    config = request.config.model_dump(mode="json")

    def same(job: Job) -> bool:
        return (job.dataset_id, job.config, job.name) == (request.dataset_id, config, request.name)

    if idempotency_key is not None:
        existing = _by_idempotency_key(session, Job, owner, idempotency_key)
        if existing is not None:
            return _replay(existing, same(existing))
    check_encoder_allowed(request.config, settings)
    dataset = get_owned(session, Dataset, request.dataset_id, owner)
    check_active_jobs(session, settings, owner)
    gpu = worker_gpu_for(request.config, settings)
    host = settings.worker_host_memory_gib
    plan = plan_for(
        request.config, dataset.num_labels, dataset.num_features, gpu, dataset.stats, host
    )
    if plan["fits"] is False:
        raise Unprocessable(
            f"the job needs about {plan['total_gib']} GiB of GPU memory, more than the "
            f"{gpu} GiB of a training worker; lower batch_size, encoder.dim or "
            "head.chunk_size, or use precision fp8",
            plan=plan,
        )
    if plan["host"] is not None and plan["host"]["fits"] is False:
        raise Unprocessable(
            f"the job needs about {plan['host']['total_gib']} GiB of host RAM, more than the "
            f"{host} GiB of a training worker; lower fusion.candidates or fusion.neighbours, "
            "turn a text prior off (weight 0), or train on a subset",
            plan=plan,
        )
    job = Job(
        id=new_id("job"),
        owner=owner,
        name=request.name,
        dataset_id=dataset.id,
        config=config,
        idempotency_key=idempotency_key,
        state=JobState.QUEUED,
        memory_plan=plan,
        enqueued_at=utcnow(),
    )
    session.add(job)
    add_log(session, job.id, "queued")
    raced = _commit_new(session, Job, owner, idempotency_key, same)
    if raced is not None:
        return raced
    _enqueue(session, job, dispatcher.send_train)
    return Submitted(job)


def check_predict_request(
    session: Session, settings: Settings, owner: str, model_id: str, k: int
) -> Model:
    """The model a batch-inference request names; NotFound, or Unprocessable for k too large."""
    model = get_owned(session, Model, model_id, owner)
    if k > settings.max_predict_k:
        raise Unprocessable(f"k={k} is above the limit of {settings.max_predict_k}")
    return model


def submit_predict_job(
    session: Session,
    dispatcher: Dispatcher,
    settings: Settings,
    owner: str,
    model_id: str,
    texts: list[str],
    k: int,
    threshold: float | None = None,
    idempotency_key: str | None = None,
) -> Submitted[PredictJob]:
    """Queue batch inference of `texts`: replay its key, store the input, commit, enqueue.

    The request is (model, k, threshold, texts); the texts are compared through the stored input
    file, so a replay with another file under the same key is an IdempotencyConflict.
    """
    check_predict_request(session, settings, owner, model_id, k)
    payload = "".join(json.dumps(t) + "\n" for t in texts).encode("utf-8")

    def same(job: PredictJob) -> bool:
        return (job.model_id, job.k, job.threshold, job.num_texts) == (
            model_id,
            k,
            threshold,
            len(texts),
        ) and _digest_of_file(job.input_path) == hashlib.sha256(payload).hexdigest()

    if idempotency_key is not None:
        existing = _by_idempotency_key(session, PredictJob, owner, idempotency_key)
        if existing is not None:
            return _replay(existing, same(existing))
    job_id = new_id("pj")
    folder = settings.effective_artifacts_dir / "predict-jobs" / job_id
    folder.mkdir(parents=True)
    try:
        (folder / "input.jsonl").write_bytes(payload)
    except OSError:  # a full disk: no half-written input stays behind
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job = PredictJob(
        id=job_id,
        owner=owner,
        model_id=model_id,
        idempotency_key=idempotency_key,
        state=JobState.QUEUED,
        k=k,
        threshold=threshold,
        num_texts=len(texts),
        input_path=str(folder / "input.jsonl"),
        enqueued_at=utcnow(),
    )
    session.add(job)
    raced = _commit_new(session, PredictJob, owner, idempotency_key, same)
    if raced is not None:
        shutil.rmtree(folder, ignore_errors=True)
        return raced
    _enqueue(session, job, dispatcher.send_predict)
    return Submitted(job)


def _by_idempotency_key(
    session: Session, table: type[AnyJob], owner: str, key: str
) -> AnyJob | None:
    return session.scalar(select(table).where(table.owner == owner, table.idempotency_key == key))


def _replay(existing: AnyJob, same: bool) -> Submitted[AnyJob]:
    if not same:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return Submitted(existing, replayed=True)


def _commit_new(
    session: Session,
    table: type[AnyJob],
    owner: str,
    idempotency_key: str | None,
    same: Callable[[AnyJob], bool],
) -> Submitted[AnyJob] | None:
    """Commit the new row; on a concurrent request with the same key, that request's replay."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = (
            None
            if idempotency_key is None
            else _by_idempotency_key(session, table, owner, idempotency_key)
        )
        if existing is None:
            raise
        return _replay(existing, same(existing))
    return None


def _digest_of_file(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _enqueue(session: Session, job: Job | PredictJob, send: Callable[[str], None]) -> None:
    """Send a committed job to its queue; if the broker is down the reconciler sends it later."""
    try:
        send(job.id)
    except Exception:
        log.exception("broker unreachable; the reconciler will send job %s later", job.id)
        job.enqueued_at = None
        session.commit()


# --- cancel (the API) ---------------------------------------------------------------------------


def request_cancel(session: Session, owner: str, job_id: str, table: JobTable = Job) -> Any:
    """Cancel a training job (or, with `table=PredictJob`, a predict job): a queued one at once,
    a running one cooperatively (a training job at its next step, a predict job at its next
    batch). Raises NotFound, or Conflict when the job has already finished.
    """
    job: Job | PredictJob = get_owned(session, table, job_id, owner)  # type: ignore[type-var]
    if job.state in TERMINAL_STATES:
        kind = "job" if table is Job else "predict job"
        raise Conflict(f"{kind} {job_id!r} has already finished ({job.state})")
    done = _changed(
        session,
        update(table)
        .where(table.id == job_id, table.state == JobState.QUEUED)
        .values(state=JobState.CANCELLED, cancel_requested=True, finished_at=utcnow()),
    )
    if not done:
        session.execute(update(table).where(table.id == job_id).values(cancel_requested=True))
    if table is Job:  # the job log is a training job's
        add_log(session, job_id, "cancel requested")
    session.commit()
    session.refresh(job)
    return job


# --- claim, fence, finish (the worker) ----------------------------------------------------------


def claim(session: Session, table: JobTable, job_id: str, worker: str) -> int:
    """Move a queued job to running for this worker; return the new attempt, or 0 if not claimed.

    A training job cancelled while queued (its flag set but not yet cancelled) is cancelled here.
    """
    row: Job | PredictJob | None = session.get(table, job_id)  # type: ignore[assignment]
    if row is None or row.state != JobState.QUEUED:
        return 0
    if row.cancel_requested:
        row.state, row.finished_at = JobState.CANCELLED, utcnow()
        if isinstance(row, Job):
            add_log(session, job_id, "cancelled before it started")
        return 0
    attempt = row.attempt + 1
    values: dict[str, object] = {
        "state": JobState.RUNNING,
        "attempt": attempt,
        "heartbeat_at": utcnow(),
    }
    if isinstance(row, Job):
        values.update(worker=worker, started_at=row.started_at or utcnow())
    won = _changed(
        session,
        update(table)
        .where(table.id == job_id, table.state == JobState.QUEUED, table.attempt == attempt - 1)
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    return attempt if won == 1 else 0


def fenced_update(
    session: Session, table: JobTable, job_id: str, attempt: int, **values: object
) -> None:
    """Update a running job this worker holds; raise LeaseLost if it no longer does."""
    held = _changed(
        session,
        update(table)
        .where(table.id == job_id, table.attempt == attempt, table.state == JobState.RUNNING)
        .values(**values),
    )
    if held != 1:
        raise LeaseLost(job_id)


def heartbeat(session: Session, table: JobTable, job_id: str, attempt: int) -> None:
    """Refresh the lease of a running job; raise LeaseLost if this worker no longer holds it."""
    fenced_update(session, table, job_id, attempt, heartbeat_at=utcnow())


def finish(
    session: Session,
    table: JobTable,
    job_id: str,
    attempt: int,
    state: JobState,
    **values: object,
) -> None:
    """Move a held running job to a terminal `state` (with extra column values); LeaseLost if not
    held any more."""
    if state not in TERMINAL_STATES:
        raise ValueError(f"{state} is not a terminal state")
    fenced_update(session, table, job_id, attempt, state=state, finished_at=utcnow(), **values)


def poll_cancel(session: Session, job_id: str, attempt: int, table: type = Job) -> bool:
    """Whether the held job (training, or `table=PredictJob`) was asked to cancel; LeaseLost if
    it is not held any more."""
    job = session.get(table, job_id)
    if job is None or job.attempt != attempt or job.state != JobState.RUNNING:
        raise LeaseLost(job_id)
    return job.cancel_requested


# --- requeue (the reconciler) -------------------------------------------------------------------


def requeue_lost(
    session: Session, lease_seconds: float, max_attempts: int | None = None
) -> list[tuple[str, str]]:
    """Move running jobs whose heartbeat is older than the lease back to queued (their next
    attempt resumes from the last checkpoint); return (kind, job id) of each, to send again.

    A job lost on its `max_attempts`-th attempt (a poison job that kills its worker) fails
    instead, with the reason "worker lost N times"; None: no limit.
    """
    requeued: list[tuple[str, str]] = []
    t = utcnow()
    stale = t - timedelta(seconds=lease_seconds)
    for table, kind in KINDS:
        lost: list[Job | PredictJob] = list(
            session.scalars(
                select(table).where(table.state == JobState.RUNNING, table.heartbeat_at < stale)
            )
        )
        for job in lost:
            give_up = max_attempts is not None and job.attempt >= max_attempts
            values: dict[str, object] = {"state": JobState.QUEUED, "enqueued_at": t}
            if give_up:
                reason = f"worker lost {job.attempt} times (the retry limit); not retried"
                values = {"state": JobState.FAILED, "finished_at": t, "failure_reason": reason}
            changed = _changed(
                session,
                update(table)
                .where(
                    table.id == job.id,
                    table.attempt == job.attempt,
                    table.state == JobState.RUNNING,
                )
                .values(**values),
            )
            if changed != 1:
                continue
            if isinstance(job, Job):
                add_log(
                    session,
                    job.id,
                    f"worker {job.worker} lost (no heartbeat since {job.heartbeat_at}); "
                    + (
                        f"failed: lost on {job.attempt} attempts"
                        if give_up
                        else "re-queued to resume from the last checkpoint"
                    ),
                )
            if not give_up:
                requeued.append((kind, job.id))
    return requeued


def due_for_resend(session: Session, after_seconds: float) -> list[tuple[str, str]]:
    """Queued jobs never sent, or sent more than `after_seconds` ago and not claimed (a broker
    lost the message): mark them sent now and return (kind, job id) of each."""
    due: list[tuple[str, str]] = []
    t = utcnow()
    old = t - timedelta(seconds=after_seconds)
    for table, kind in KINDS:
        waiting: list[Job | PredictJob] = list(
            session.scalars(
                select(table).where(
                    table.state == JobState.QUEUED,
                    or_(table.enqueued_at.is_(None), table.enqueued_at < old),
                )
            )
        )
        for job in waiting:
            if isinstance(job, Job) and job.cancel_requested:
                continue
            job.enqueued_at = t
            due.append((kind, job.id))
    return due
