"""Models: list, get, delete, and top-k prediction served from the API's model cache."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from fastapi import APIRouter, Request, Response

from service.api.deps import LimitQuery, OffsetQuery, OwnerDep, SessionDep, SettingsDep
from service.crud import get_owned, list_owned
from service.errors import PayloadTooLarge, TooManyRequests, Unprocessable
from service.models import Model
from service.schemas import ModelOut, PredictRequest, PredictResponse

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=list[ModelOut], summary="List models")
def list_models(
    session: SessionDep,
    owner: OwnerDep,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> list[Model]:
    """The caller's models, newest first."""
    return list_owned(session, Model, owner, limit, offset)


@router.get("/{model_id}", response_model=ModelOut, summary="Get a model")
def get_model(model_id: str, session: SessionDep, owner: OwnerDep) -> Model:
    """Config, metrics, label count, precision and size of a model."""
    return get_owned(session, Model, model_id, owner)


@router.delete("/{model_id}", status_code=204, summary="Delete a model")
def delete_model(model_id: str, request: Request, session: SessionDep, owner: OwnerDep) -> Response:
    """Delete a model and its files."""
    row = get_owned(session, Model, model_id, owner)
    path = Path(row.path)
    session.delete(row)
    session.commit()
    request.app.state.model_cache.evict(model_id)
    shutil.rmtree(path, ignore_errors=True)
    return Response(status_code=204)


@router.post("/{model_id}/predict", response_model=PredictResponse, summary="Top-k labels")
def predict(
    model_id: str,
    body: PredictRequest,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
) -> PredictResponse:
    """Per text, the k best labels with their texts and scores in [0, 1] (fused with text priors).

    413 past `max_predict_texts` texts, `max_text_chars` characters in a text or
    `max_predict_chars` in all; 429 (Retry-After) while `max_concurrent_predicts` calls are
    being scored; 422 past
    `max_predict_k` (k, or the labels excluded for one text), or for `exclude_label_ids` without
    one list per text or with an id outside the model's labels. k larger than the label count
    returns every label.
    """
    row = get_owned(session, Model, model_id, owner)
    check_predict_limits(settings, body.texts, body.k, body.exclude_label_ids)
    path = row.path
    session.close()
    slots: threading.BoundedSemaphore = request.app.state.predict_slots
    if not slots.acquire(blocking=False):
        raise TooManyRequests(
            f"{settings.max_concurrent_predicts} predict calls are being scored; retry shortly"
        )
    try:
        predictor = request.app.state.model_cache.get(model_id, path)
        k = min(body.k, predictor.num_labels)
        predictions = predictor.predict(
            body.texts, k=k, threshold=body.threshold, exclude=body.exclude_label_ids
        )
    except ValueError as exc:
        raise Unprocessable(f"exclude_label_ids: {exc}") from None
    finally:
        slots.release()
    request.app.state.metrics.predictions.inc(len(body.texts))
    return PredictResponse(model_id=model_id, k=k, predictions=predictions)


def check_predict_limits(
    settings: SettingsDep, texts: list[str], k: int, exclude: list[list[int]] | None = None
) -> None:
    """Raise 413/422 when a prediction request exceeds the configured limits."""
    if len(texts) > settings.max_predict_texts:
        raise PayloadTooLarge(
            f"{len(texts)} texts in one request; the limit is {settings.max_predict_texts} "
            "(use a predict job for large batches)"
        )
    total = sum(len(t) for t in texts)
    if total > settings.max_predict_chars:
        raise PayloadTooLarge(
            f"{total} characters in one request; the limit is {settings.max_predict_chars}"
        )
    longest = max((len(t) for t in texts), default=0)
    if longest > settings.max_text_chars:
        raise PayloadTooLarge(
            f"a text of {longest} characters; the limit is {settings.max_text_chars}"
        )
    if k > settings.max_predict_k:
        raise Unprocessable(f"k={k} is above the limit of {settings.max_predict_k}")
    longest_exclude = max((len(ids) for ids in exclude or []), default=0)
    if longest_exclude > settings.max_predict_k:
        raise Unprocessable(
            f"exclude_label_ids: {longest_exclude} ids for one text; the limit is "
            f"{settings.max_predict_k}"
        )
