"""Typed dependencies of the routes: settings, a DB session, the caller's key and dispatcher."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.core.db import get_sessionmaker
from service.core.security import lookup_key
from service.errors import Forbidden, Unauthorized
from service.models import ApiKey
from service.queue import Dispatcher

_bearer = HTTPBearer(auto_error=False, description="An API key from `elmo keys create`.")


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """A session per request, committed when the route returns without error.

    Scope "function" (below): the commit runs before the response is sent, so a client that
    reads a 201 and at once uses what it created finds it (FastAPI's default scope commits after
    sending, a race a test caught: a job posted right after its dataset's 201 got a 404).
    """
    session = get_sessionmaker(settings.effective_database_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

LimitQuery = Annotated[int, Query(ge=1, le=1000)]
"""Page size of the list routes."""
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a POST safely: the same key and request return the job it created; "
        "the same key with a different request is a 409.",
    ),
]
"""The Idempotency-Key header of the POSTs that create jobs (see `service.jobs.lifecycle`)."""
OffsetQuery = Annotated[int, Query(ge=0, le=1_000_000_000)]
"""Rows the list routes skip; bounded, since an unbounded offset overflows on SQLite."""


PREDICT_SCOPE_ROUTES = frozenset(
    {
        ("GET", "/v1/me"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model_id}"),
        ("POST", "/v1/models/{model_id}/predict"),
        ("POST", "/v1/models/{model_id}/predict-jobs"),
        ("GET", "/v1/predict-jobs"),
        ("GET", "/v1/predict-jobs/{job_id}"),
        ("GET", "/v1/predict-jobs/{job_id}/results"),
        ("POST", "/v1/predict-jobs/{job_id}/cancel"),
    }
)
"""What a `predict` key may call: read models, predict, run and read predict jobs."""


def get_current_key(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The API key presented as `Authorization: Bearer <key>`; 401 if missing or unknown, 403
    when its scope does not cover the route."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    key = lookup_key(session, credentials.credentials)
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    if key.scope != "full":
        route = getattr(request.scope.get("route"), "path", "")
        if (request.method, route) not in PREDICT_SCOPE_ROUTES:
            raise Forbidden(
                f"this key's scope is {key.scope!r}: it may only read models and predict"
            )
    return key


CurrentKey = Annotated[ApiKey, Depends(get_current_key)]


def get_owner(key: CurrentKey) -> str:
    """The owner every resource of this request is scoped to."""
    return key.owner


OwnerDep = Annotated[str, Depends(get_owner)]


def require_metrics_access(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """`/metrics` is behind a key: the scraper's `ELMO_METRICS_TOKEN` where it is set, else any
    valid API key; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send the metrics token or an API key as 'Authorization: Bearer ...'")
    token = settings.metrics_token
    if token is not None:
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise Unauthorized("wrong metrics token")
        return
    if lookup_key(session, credentials.credentials) is None:
        raise Unauthorized("unknown or revoked API key")


MetricsAccess = Annotated[None, Depends(require_metrics_access)]


def get_dispatcher(request: Request) -> Dispatcher:
    """The broker client that tells workers to look at a job."""
    return request.app.state.dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
