"""Training jobs: create (idempotent), list, get, metrics, telemetry (+ PNG), logs, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from service.api.deps import (
    DispatcherDep,
    IdempotencyKey,
    LimitQuery,
    OffsetQuery,
    OwnerDep,
    SessionDep,
    SettingsDep,
)
from service.api.links import id_links
from service.core.plots import telemetry_png
from service.crud import get_owned, list_owned
from service.jobs import JobState, lifecycle
from service.models import Job, JobLog, JobMetric, JobTelemetry
from service.schemas import (
    JobCreate,
    JobOut,
    LogLine,
    MetricsPoint,
    Progress,
    TelemetryOut,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def job_out(job: Job) -> JobOut:
    """The API view of a job row."""
    progress = Progress(**(job.progress or {}))
    if job.state == JobState.SUCCEEDED and progress.fraction is not None:
        progress.fraction, progress.eta_s = 1.0, 0.0
    return JobOut(
        id=job.id,
        name=job.name,
        dataset_id=job.dataset_id,
        state=job.state,
        phase=job.phase,
        progress=progress,
        latest_metrics=job.latest_metrics,
        latest_metrics_split=job.latest_metrics_split,
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
    """Queue a job; 422 with the memory estimate if it cannot fit the training workers' GPU, 409
    if the Idempotency-Key was used with a different request."""
    submitted = lifecycle.submit_training_job(
        session, dispatcher, settings, owner, body, idempotency_key
    )
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{submitted.job.id}"
    return job_out(submitted.job)


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
    return job_out(lifecycle.request_cancel(session, owner, job_id))
