"""API keys: high-entropy bearer tokens, stored as their sha256 only."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.db import can_be_a_key
from service.models import ApiKey, new_id

KEY_PREFIX = "elmo_"


def hash_key(token: str) -> str:
    """The stored form of a key: sha256 hex (the token has 256 bits of entropy, so no salt)."""
    return hashlib.sha256(token.encode()).hexdigest()


SCOPES = ("full", "predict")
"""`full`: every route; `predict`: read models, predict and run predict jobs, nothing else."""


def create_api_key(session: Session, owner: str, scope: str = "full") -> tuple[ApiKey, str]:
    """Create a key for `owner` with `scope`; return the row and the token (shown once, never
    stored)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=new_id("key"), owner=owner, key_hash=hash_key(token), prefix=token[:12], scope=scope
    )
    session.add(row)
    session.flush()
    return row, token


def lookup_key(session: Session, token: str) -> ApiKey | None:
    """The active key whose hash matches `token`, or None."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token)))
    if row is None or row.revoked:
        return None
    return row


def list_keys(session: Session, owner: str | None = None) -> list[ApiKey]:
    """Every key (or `owner`'s), oldest first: ids, owners, prefixes, revoked flags; no secret."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if owner is not None:
        query = query.where(ApiKey.owner == owner)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: str, owner: str | None = None) -> ApiKey | None:
    """Revoke key `key_id` (only among `owner`'s keys when given); None when there is no such
    key. Revoking twice is harmless."""
    row = session.get(ApiKey, key_id) if can_be_a_key(key_id) else None
    if row is None or (owner is not None and row.owner != owner):
        return None
    row.revoked = True
    session.flush()
    return row


def rotate_key(
    session: Session, key_id: str, owner: str | None = None
) -> tuple[ApiKey, str] | None:
    """Revoke key `key_id` and create its replacement for the same owner; return the new row and
    token (shown once), or None when there is no such active key."""
    row = session.get(ApiKey, key_id) if can_be_a_key(key_id) else None
    if row is None or row.revoked or (owner is not None and row.owner != owner):
        return None
    row.revoked = True
    return create_api_key(session, row.owner, row.scope)


def key_is_valid(database_url: str, token: str) -> bool:
    """Whether `token` is an active key of the database at `database_url` (own session)."""
    from service.core.db import session_scope

    with session_scope(database_url) as session:
        return lookup_key(session, token) is not None
