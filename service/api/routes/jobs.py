"""Training jobs: create (idempotent), list, get, metrics, telemetry (+ PNG), logs, cancel."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from service.api.deps import (
    DispatcherDep,
    LimitQuery,
    OffsetQuery,
    OwnerDep,
    SessionDep,
    SettingsDep,
)
from service.api.links import id_links
from service.core.planning import plan_for, worker_gpu_for
from service.core.plots import telemetry_png
from service.crud import get_owned, list_owned
from service.errors import Conflict, Unprocessable
from service.models import Dataset, Job, JobLog, JobMetric, JobTelemetry, new_id, utcnow
from service.schemas import (
    TERMINAL_STATES,
    JobCreate,
    JobOut,
    JobState,
    LogLine,
    MetricsPoint,
    Progress,
    TelemetryOut,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a POST safely: the same key returns the job it created.",
    ),
]


def job_out(job: Job) -> JobOut:
    """The API view of a job row."""
    progress = Progress(**(job.progress or {}))
    if job.state == "succeeded" and progress.fraction is not None:
        progress.fraction, progress.eta_s = 1.0, 0.0
    return JobOut(
        id=job.id,
        name=job.name,
        dataset_id=job.dataset_id,
        state=job.state,  # type: ignore[arg-type]
        phase=job.phase,
        progress=progress,
        latest_metrics=job.latest_metrics,
        failure_reason=job.failure_reason,
        cancel_requested=job.cancel_requested,
        attempt=job.attempt,
        worker=job.worker,
        heartbeat_at=job.heartbeat_at,
        memory_plan=job.memory_plan,
        model_id=job.model_id,
        config=job.config,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Create a training job",
    responses={
        202: {
            "links": id_links(
                "job_id",
                {
                    f"Job{name}": (f"/v1/jobs/{{job_id}}{suffix}", method)
                    for name, suffix, method in (
                        ("Get", "", "get"),
                        ("Metrics", "/metrics", "get"),
                        ("Telemetry", "/telemetry", "get"),
                        ("TelemetryPng", "/telemetry.png", "get"),
                        ("Logs", "/logs", "get"),
                        ("Cancel", "/cancel", "post"),
                    )
                },
            )
        }
    },
)
def create_job(
    body: JobCreate,
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a job; 422 with the memory estimate if it cannot fit the training workers' GPU."""
    config = body.config.model_dump(mode="json")
    if idempotency_key is not None:
        existing = _by_idempotency_key(session, owner, idempotency_key)
        if existing is not None:
            return _replay(existing, body, config, response)
    dataset = get_owned(session, Dataset, body.dataset_id, owner)
    gpu = worker_gpu_for(body.config, settings)
    plan = plan_for(body.config, dataset.num_labels, dataset.num_features, gpu)
    if plan["fits"] is False:
        raise Unprocessable(
            f"the job needs about {plan['total_gib']} GiB of GPU memory, more than the "
            f"{gpu} GiB of a training worker; lower batch_size, encoder.dim or "
            "head.chunk_size, or use precision fp8",
            plan=plan,
        )
    job = Job(
        id=new_id("job"),
        owner=owner,
        name=body.name,
        dataset_id=dataset.id,
        config=config,
        idempotency_key=idempotency_key,
        state="queued",
        memory_plan=plan,
        enqueued_at=utcnow(),
    )
    session.add(job)
    session.add(JobLog(job_id=job.id, message="queued"))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _by_idempotency_key(session, owner, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, body, config, response)
    try:
        dispatcher.send_train(job.id)
    except Exception:
        log.exception("broker unreachable; the reconciler will send job %s later", job.id)
        session.execute(update(Job).where(Job.id == job.id).values(enqueued_at=None))
        session.commit()
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_out(job)


def _by_idempotency_key(session: SessionDep, owner: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.owner == owner, Job.idempotency_key == key))


def _replay(existing: Job, body: JobCreate, config: dict, response: Response) -> JobOut:
    same = (existing.dataset_id, existing.config, existing.name) == (
        body.dataset_id,
        config,
        body.name,
    )
    if not same:
        raise Unprocessable("this Idempotency-Key was already used with a different request")
    response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{existing.id}"
    return job_out(existing)


@router.get("", response_model=list[JobOut], summary="List jobs")
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    state: JobState | None = None,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> list[JobOut]:
    """The caller's jobs, newest first, optionally only those in `state`."""
    return [job_out(j) for j in list_owned(session, Job, owner, limit, offset, state=state)]


@router.get("/{job_id}", response_model=JobOut, summary="Get a job")
def get_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    """State, phase, progress (epoch, step, total, ETA), latest metrics, failure reason."""
    return job_out(get_owned(session, Job, job_id, owner))


@router.get("/{job_id}/metrics", response_model=list[MetricsPoint], summary="Metrics history")
def job_metrics(job_id: str, session: SessionDep, owner: OwnerDep) -> list[JobMetric]:
    """Every evaluation of the job, in order."""
    get_owned(session, Job, job_id, owner)
    return list(
        session.scalars(select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.id))
    )


def _telemetry(session: SessionDep, job_id: str) -> list[dict]:
    rows = session.scalars(
        select(JobTelemetry).where(JobTelemetry.job_id == job_id).order_by(JobTelemetry.id)
    )
    return [row.record for row in rows]


@router.get("/{job_id}/telemetry", response_model=TelemetryOut, summary="Memory telemetry")
def job_telemetry(job_id: str, session: SessionDep, owner: OwnerDep) -> TelemetryOut:
    """Memory per phase over time: the static sizes, then one record per epoch."""
    get_owned(session, Job, job_id, owner)
    return TelemetryOut(job_id=job_id, records=_telemetry(session, job_id))


@router.get(
    "/{job_id}/telemetry.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="Memory telemetry plot",
)
def job_telemetry_png(job_id: str, session: SessionDep, owner: OwnerDep) -> Response:
    """A PNG plot of the job's memory telemetry."""
    get_owned(session, Job, job_id, owner)
    return Response(telemetry_png(job_id, _telemetry(session, job_id)), media_type="image/png")


@router.get("/{job_id}/logs", response_model=list[LogLine], summary="Job log")
def job_logs(
    job_id: str,
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[LogLine]:
    """The job's log lines, oldest first (service events and the trainer's messages)."""
    get_owned(session, Job, job_id, owner)
    rows = session.scalars(
        select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id).limit(limit)
    )
    return [LogLine(time=row.created_at, message=row.message) for row in rows]


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut, summary="Cancel a job")
def cancel_job(job_id: str, session: SessionDep, owner: OwnerDep) -> JobOut:
    """A queued job is cancelled at once; a running one stops at its next step (cooperative)."""
    job = get_owned(session, Job, job_id, owner)
    if job.state in TERMINAL_STATES:
        raise Conflict(f"job {job_id!r} has already finished ({job.state})")
    now = utcnow()
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(state="cancelled", cancel_requested=True, finished_at=now)
    ).rowcount
    if not done:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    session.add(JobLog(job_id=job_id, message="cancel requested"))
    session.commit()
    session.refresh(job)
    return job_out(job)
