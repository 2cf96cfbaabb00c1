"""The service's own error types. Each carries its HTTP status; `service.api.problems` turns
them (and the library's typed errors) into problem+json responses in one place."""

from __future__ import annotations

import errno
import re
from typing import Any

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_WRAPPED_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust libraries (safetensors) say it


class ServiceError(Exception):
    """Base of the service's own errors: an HTTP status, a slug, a detail and extra fields."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(ServiceError):
    """A resource does not exist or belongs to another owner (indistinguishable on purpose)."""

    status, slug, title = 404, "not-found", "Not found"


class Unauthorized(ServiceError):
    """No or an unknown API key."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ServiceError):
    """The key is valid but its scope does not cover this route."""

    status, slug, title = 403, "forbidden", "Forbidden"


class Conflict(ServiceError):
    """The request conflicts with the resource's state (e.g. cancel a finished job)."""

    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ServiceError):
    """A body, upload or batch is larger than a configured limit."""

    status, slug, title = 413, "too-large", "Payload too large"


class TooManyRequests(ServiceError):
    """The server is at a configured concurrency limit; the client may retry after a while."""

    status, slug, title = 429, "too-many-requests", "Too many requests"
    retry_after_s = 1


class UnsupportedUpload(ServiceError):
    """The uploaded file type is not one the service reads."""

    status, slug, title = 415, "unsupported-media-type", "Unsupported upload"


class Unprocessable(ServiceError):
    """The request is well-formed but cannot be done (e.g. the job does not fit the GPU)."""

    status, slug, title = 422, "unprocessable", "Unprocessable request"


class InsufficientStorage(ServiceError):
    """The server's disk (the artifacts directory) is full: nothing was stored."""

    status, slug, title = 507, "insufficient-storage", "Insufficient storage"


class NotReady(ServiceError):
    """A dependency of the API (database, broker) is unreachable."""

    status, slug, title = 503, "not-ready", "Service not ready"


def is_disk_full(exc: BaseException) -> bool:
    """True if `exc`, or an exception it was raised from, is an `OSError` for a full disk
    (ENOSPC) or an exhausted quota (EDQUOT), or a library error wrapping one ("(os error 28)")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        wrapped = _WRAPPED_OS_ERROR.search(str(current))
        if wrapped is not None and int(wrapped.group(1)) in DISK_FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False
