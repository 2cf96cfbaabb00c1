"""Owner-scoped reads: a resource of another owner is indistinguishable from a missing one."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.db import can_be_a_key
from service.errors import NotFound
from service.models import Dataset, Job, Model, PredictJob

T = TypeVar("T", Dataset, Job, Model, PredictJob)
_NAMES = {Dataset: "dataset", Job: "job", Model: "model", PredictJob: "predict job"}


def get_owned(session: Session, table: type[T], resource_id: str, owner: str) -> T:
    """The row with `resource_id` owned by `owner`, or NotFound (404), also for an id that no
    row can have (a NUL byte: PostgreSQL would refuse the query)."""
    row = session.get(table, resource_id) if can_be_a_key(resource_id) else None
    if row is None or row.owner != owner:
        raise NotFound(f"{_NAMES[table]} {resource_id!r} not found")
    return row


def list_owned(
    session: Session, table: type[T], owner: str, limit: int, offset: int, **filters: object
) -> list[T]:
    """Rows of `owner`, newest first, with optional equality filters."""
    query = select(table).where(table.owner == owner)
    for column, value in filters.items():
        if value is not None:
            query = query.where(getattr(table, column) == value)
    query = query.order_by(table.created_at.desc(), table.id).limit(limit).offset(offset)
    return list(session.scalars(query))
