"""Per-owner quotas: how many training jobs an owner may have queued or running, and how many
bytes of datasets and models it may store. Past one, the request gets 429 with Retry-After."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.errors import TooManyRequests
from service.jobs.states import ACTIVE_STATES
from service.models import Dataset, Job, Model


def check_active_jobs(session: Session, settings: Settings, owner: str) -> None:
    """Raise TooManyRequests when `owner` already has `max_active_jobs_per_owner` training jobs
    queued or running."""
    limit = settings.max_active_jobs_per_owner
    if limit is None:
        return
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.owner == owner, Job.state.in_(ACTIVE_STATES))
    )
    if (active or 0) >= limit:
        raise TooManyRequests(
            f"{active} training jobs of yours are queued or running; the limit is {limit}: "
            "retry when one has finished"
        )


def stored_bytes(session: Session, owner: str) -> int:
    """Bytes of the owner's stored datasets and models."""
    total = 0
    for table in (Dataset, Model):
        total += (
            session.scalar(
                select(func.coalesce(func.sum(table.size_bytes), 0)).where(table.owner == owner)
            )
            or 0
        )
    return int(total)


def check_storage(session: Session, settings: Settings, owner: str, incoming: int) -> None:
    """Raise TooManyRequests when storing `incoming` more bytes would take `owner` past
    `max_stored_bytes_per_owner`."""
    limit = settings.max_stored_bytes_per_owner
    if limit is None:
        return
    used = stored_bytes(session, owner)
    if used + incoming > limit:
        raise TooManyRequests(
            f"storing {incoming} more bytes would take you to {used + incoming} of your "
            f"{limit}-byte quota: delete datasets or models first"
        )
