"""Keys of the caller's owner: GET /v1/me (which owner a key belongs to), list, create another,
revoke (self-service; the operator's `elmo keys list|revoke|rotate` covers every owner)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import CurrentKey, OwnerDep, SessionDep
from service.core.security import create_api_key, list_keys, revoke_key
from service.errors import NotFound
from service.schemas import KeyCreate, KeyCreated, KeyInfo, KeyOut

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get("/me", response_model=KeyInfo, summary="The caller's key")
def me(key: CurrentKey) -> KeyInfo:
    """Owner and prefix of the key used for this request."""
    return KeyInfo(key_id=key.id, owner=key.owner, prefix=key.prefix, scope=key.scope)


@router.get("/keys", response_model=list[KeyOut], summary="The owner's keys")
def get_keys(session: SessionDep, owner: OwnerDep) -> list[KeyOut]:
    """Every key of the caller's owner (ids, prefixes, revoked flags; never a secret)."""
    return [
        KeyOut(
            key_id=r.id, prefix=r.prefix, scope=r.scope, created_at=r.created_at, revoked=r.revoked
        )
        for r in list_keys(session, owner)
    ]


@router.post("/keys", status_code=201, response_model=KeyCreated, summary="Create another key")
def post_key(session: SessionDep, owner: OwnerDep, body: KeyCreate | None = None) -> KeyCreated:
    """A new key for the caller's owner (`scope`: full, or predict: read models and predict
    only); its token is in this response only."""
    row, token = create_api_key(session, owner, (body or KeyCreate()).scope)
    session.commit()
    return KeyCreated(key_id=row.id, prefix=row.prefix, scope=row.scope, token=token)


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke a key")
def delete_key(key_id: str, session: SessionDep, owner: OwnerDep) -> None:
    """Revoke one of the owner's keys (the one used for this request too); 404 for any other."""
    if revoke_key(session, key_id, owner) is None:
        raise NotFound(f"no key {key_id!r}")
    session.commit()
