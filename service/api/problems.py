"""The one place where errors become RFC 7807 problem+json responses.

Typed errors from the library (DatasetFormatError, ConfigError), the archive checks, request
validation and the service's own errors all map here; routes just raise.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from elmo_core.errors import ConfigError, DatasetFormatError
from service.core.archive import ArchiveTooLargeError, UnsafeArchiveError
from service.errors import InsufficientStorage, ServiceError, TooManyRequests, is_disk_full

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
DISK_FULL_DETAIL = (
    "the server's disk is full: nothing was stored; try again once space has been freed"
)


def problem(
    request: Request, status: int, slug: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    """Build a problem+json response."""
    body = {
        "type": f"urn:elmo:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Register every exception -> problem+json mapping on `app`."""

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        response = problem(request, exc.status, exc.slug, exc.title, exc.detail, **exc.extra)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(DatasetFormatError)
    async def _dataset(request: Request, exc: DatasetFormatError) -> JSONResponse:
        return problem(
            request,
            422,
            "dataset-format",
            "Malformed dataset",
            str(exc),
            file=exc.file,
            line=exc.line,
            reason=exc.reason,
        )

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return problem(request, 422, "config", "Invalid configuration", str(exc))

    @app.exception_handler(UnsafeArchiveError)
    async def _archive(request: Request, exc: UnsafeArchiveError) -> JSONResponse:
        if is_disk_full(exc):  # unpacking hit a full disk: the server's fault, not the archive's
            return _disk_full(request, exc)
        return problem(request, 422, "unsafe-archive", "Rejected archive", str(exc))

    @app.exception_handler(ArchiveTooLargeError)
    async def _archive_size(request: Request, exc: ArchiveTooLargeError) -> JSONResponse:
        return problem(request, 413, "too-large", "Payload too large", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _errors([dict(error) for error in exc.errors()])
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem(request, 422, "validation", "Invalid request", detail, errors=errors)

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> JSONResponse:
        errors = _errors([dict(error) for error in exc.errors()])
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem(request, 422, "validation", "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        return problem(request, exc.status_code, slug, _title(exc.status_code), str(exc.detail))

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if not is_disk_full(exc):
            raise exc  # any other OSError: the generic 500 below, as before
        return _disk_full(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(request, 500, "internal", "Internal error", "an unexpected error occurred")


def _disk_full(request: Request, exc: Exception) -> JSONResponse:
    """507 for a write that hit a full disk (ENOSPC/EDQUOT); the OS error (with its server
    path) is logged, not shown."""
    log.error("disk full on %s %s: %r", request.method, request.url.path, exc)
    full = InsufficientStorage(DISK_FULL_DETAIL)
    return problem(request, full.status, full.slug, full.title, full.detail)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
