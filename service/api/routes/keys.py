"""GET /v1/me: which owner the presented key belongs to (a cheap way to check a key)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import CurrentKey
from service.schemas import KeyInfo

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get("/me", response_model=KeyInfo, summary="The caller's key")
def me(key: CurrentKey) -> KeyInfo:
    """Owner and prefix of the key used for this request."""
    return KeyInfo(key_id=key.id, owner=key.owner, prefix=key.prefix)
