"""Liveness, readiness (database + broker) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from service.api.deps import DispatcherDep, MetricsAccess, SessionDep
from service.errors import NotReady
from service.jobs import JobState
from service.models import Job, PredictJob

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves HTTP")
def healthz() -> dict[str, str]:
    """Always ok while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database and the broker are reachable")
def readyz(session: SessionDep, dispatcher: DispatcherDep) -> dict[str, str]:
    """200 when the database answers and the broker accepts a connection, else 503."""
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        dispatcher.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    if any(v != "ok" for v in checks.values()):
        raise NotReady(", ".join(f"{k}: {v}" for k, v in checks.items()), checks=checks)
    return {"status": "ok", **checks}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, session: SessionDep, _: MetricsAccess) -> Response:
    """Request counters and latencies, jobs by state (all owners together), cached models (text
    exposition format); behind the metrics token or an API key."""
    m = request.app.state.metrics
    for table, gauge in ((Job, m.jobs), (PredictJob, m.predict_jobs)):
        counts = dict(
            session.execute(select(table.state, func.count()).group_by(table.state)).all()
        )
        for state in JobState:
            gauge.labels(state.value).set(counts.get(state, 0))
    m.cached_models.set(len(request.app.state.model_cache))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
