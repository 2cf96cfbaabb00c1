"""Batch inference: upload texts for a model, a worker predicts, the results are downloadable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import FileResponse

from elmo_core.errors import DatasetFormatError
from service.api.deps import (
    DispatcherDep,
    IdempotencyKey,
    LimitQuery,
    OffsetQuery,
    OwnerDep,
    SessionDep,
    SettingsDep,
)
from service.api.links import id_links
from service.core.config import Settings
from service.core.uploads import safe_filename, save_stream, scratch_dir
from service.crud import get_owned, list_owned
from service.errors import Conflict, PayloadTooLarge, UnsupportedUpload
from service.jobs import JobState, lifecycle
from service.models import PredictJob
from service.schemas import PredictJobOut

router = APIRouter(tags=["predict-jobs"])


def predict_job_out(job: PredictJob) -> PredictJobOut:
    """The API view of a predict job, with its results URL once it succeeded."""
    out = PredictJobOut.model_validate(job)
    if job.state == JobState.SUCCEEDED:
        out.results_url = f"/v1/predict-jobs/{job.id}/results"
    return out


def read_texts(
    path: Path, display_name: str, max_chars: int, max_texts: int | None = None
) -> list[str]:
    """Texts of an uploaded file: JSONL (`{"text": ...}` or a JSON string per line) or plain
    text (one per line). DatasetFormatError names the line of any defect; PayloadTooLarge when
    the file holds more than `max_texts` texts (read no further)."""
    jsonl = display_name.lower().endswith((".jsonl", ".json"))
    texts: list[str] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DatasetFormatError(display_name, number, f"not UTF-8: {exc.reason}") from None
            if not line.strip():
                continue
            text = _parse_line(line, display_name, number) if jsonl else line
            if len(text) > max_chars:
                raise DatasetFormatError(
                    display_name, number, f"text of {len(text)} characters (limit {max_chars})"
                )
            texts.append(text)
            if max_texts is not None and len(texts) > max_texts:
                raise PayloadTooLarge(
                    f"more than {max_texts} texts in one predict job (line {number}); "
                    "split the file"
                )
    if not texts:
        raise DatasetFormatError(display_name, 0, "no texts in the file")
    return texts


def _parse_line(line: str, name: str, number: int) -> str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(name, number, f"invalid JSON: {exc.msg}") from None
    if isinstance(value, dict):
        value = value.get("text")
    if not isinstance(value, str):
        raise DatasetFormatError(name, number, 'expected {"text": "..."} or a JSON string')
    return value


@router.post(
    "/v1/models/{model_id}/predict-jobs",
    status_code=202,
    response_model=PredictJobOut,
    summary="Batch inference over an uploaded file",
    responses={
        202: {
            "links": id_links(
                "job_id",
                {
                    "GetPredictJob": ("/v1/predict-jobs/{job_id}", "get"),
                    "PredictJobResults": ("/v1/predict-jobs/{job_id}/results", "get"),
                },
            )
        }
    },
)
def create_predict_job(
    model_id: str,
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    response: Response,
    file: Annotated[UploadFile, File(description=".jsonl ({'text': ...} per line) or .txt")],
    k: Annotated[int, Form(ge=1)] = 10,
    threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    idempotency_key: IdempotencyKey = None,
) -> PredictJobOut:
    """Queue a batch inference job; download the results from `results_url` when it succeeded.

    The same Idempotency-Key with the same model, k, threshold and texts returns the job it
    created; with a different request it is a 409."""
    lifecycle.check_predict_request(session, settings, owner, model_id, k)
    texts = _upload_texts(file, settings)
    submitted = lifecycle.submit_predict_job(
        session, dispatcher, settings, owner, model_id, texts, k, threshold, idempotency_key
    )
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/predict-jobs/{submitted.job.id}"
    return predict_job_out(submitted.job)


def _upload_texts(file: UploadFile, settings: Settings) -> list[str]:
    """The texts of an uploaded .jsonl/.txt file (spooled to a scratch folder, then removed)."""
    name = safe_filename(file.filename, "texts.txt")
    if not name.lower().endswith((".jsonl", ".json", ".txt")):
        raise UnsupportedUpload(f"unsupported file {name!r}: upload .jsonl or .txt")
    scratch = scratch_dir(settings)
    try:
        raw = scratch / name
        save_stream(file.file, raw, settings.max_upload_bytes)
        return read_texts(raw, name, settings.max_text_chars, settings.max_predict_job_texts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@router.post(
    "/v1/predict-jobs/{job_id}/cancel",
    status_code=202,
    response_model=PredictJobOut,
    summary="Cancel a predict job",
)
def cancel_predict_job(job_id: str, session: SessionDep, owner: OwnerDep) -> PredictJobOut:
    """A queued predict job is cancelled at once; a running one stops before its next batch of
    texts (its partial results are discarded). 409 once it has finished."""
    return predict_job_out(lifecycle.request_cancel(session, owner, job_id, PredictJob))


@router.get("/v1/predict-jobs", response_model=list[PredictJobOut], summary="List predict jobs")
def list_predict_jobs(
    session: SessionDep,
    owner: OwnerDep,
    state: JobState | None = None,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> list[PredictJobOut]:
    """The caller's batch inference jobs, newest first."""
    rows = list_owned(session, PredictJob, owner, limit, offset, state=state)
    return [predict_job_out(r) for r in rows]


@router.get("/v1/predict-jobs/{job_id}", response_model=PredictJobOut, summary="Get a predict job")
def get_predict_job(job_id: str, session: SessionDep, owner: OwnerDep) -> PredictJobOut:
    """State of a batch inference job."""
    return predict_job_out(get_owned(session, PredictJob, job_id, owner))


@router.get(
    "/v1/predict-jobs/{job_id}/results",
    response_class=FileResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
    summary="Download predict job results",
)
def predict_job_results(job_id: str, session: SessionDep, owner: OwnerDep) -> FileResponse:
    """JSON lines `{"index": i, "labels": [{"label_id", "label", "score"}]}`, input order."""
    job = get_owned(session, PredictJob, job_id, owner)
    if job.state != JobState.SUCCEEDED or not job.output_path:
        raise Conflict(f"predict job {job_id!r} has no results ({job.state})")
    return FileResponse(
        job.output_path, media_type="application/x-ndjson", filename=f"{job_id}.jsonl"
    )
