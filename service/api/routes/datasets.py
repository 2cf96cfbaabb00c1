"""Datasets: upload (validated, with statistics), list, get, delete."""

from __future__ import annotations

import shutil
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from sqlalchemy import select

from service.api.deps import LimitQuery, OffsetQuery, OwnerDep, SessionDep, SettingsDep
from service.api.links import id_links
from service.core.dataset_validation import validation_slot
from service.core.quotas import check_storage
from service.core.uploads import ingest_dataset, safe_filename
from service.crud import get_owned, list_owned
from service.errors import Conflict
from service.jobs import ACTIVE_STATES
from service.models import Dataset, Job, new_id
from service.schemas import PRINTABLE, DatasetOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    summary="Upload a dataset",
    responses={
        201: {
            "links": id_links(
                "dataset_id",
                {
                    "GetDataset": ("/v1/datasets/{dataset_id}", "get"),
                    "DeleteDataset": ("/v1/datasets/{dataset_id}", "delete"),
                },
            )
        }
    },
)
def upload_dataset(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    response: Response,
    file: Annotated[
        UploadFile, File(description="A .tar.gz/.tgz/.tar/.zip of a dataset directory, or .jsonl")
    ],
    name: Annotated[str | None, Form(max_length=300, pattern=PRINTABLE)] = None,
    format: Annotated[Literal["auto", "lf-raw", "bow", "jsonl"], Form()] = "auto",
) -> Dataset:
    """Store, unpack (safely) and validate a dataset; 422 names the bad file and line.

    The storage quota is checked on the upload's size, then on the unpacked size, before any
    parsing (429). Parsing and statistics run in a child process under a memory cap (413 past
    `dataset_validation_memory_gib`); at most `max_concurrent_dataset_validations` uploads are
    validated at once (429 with Retry-After past it).
    """
    dataset_id = new_id("ds")
    dest = settings.effective_artifacts_dir / "datasets" / dataset_id

    def check_quota(incoming: int) -> None:
        try:
            check_storage(session, settings, owner, incoming)
        finally:
            session.close()  # no transaction stays open while the upload is unpacked and parsed

    with validation_slot(request.app.state, settings):
        ds, size, root = ingest_dataset(
            settings, file.file, file.filename or "upload", dest, format, check_quota
        )
    try:
        check_storage(session, settings, owner, size)  # again: another upload may have landed
        row = Dataset(
            id=dataset_id,
            owner=owner,
            name=name or _default_name(file.filename, ds.name),
            format=ds.format,
            path=str(root),
            size_bytes=size,
            num_labels=ds.num_labels,
            num_train=ds.num_train,
            num_test=ds.num_test,
            num_features=ds.num_features,
            stats=ds.stats,
        )
        session.add(row)
        session.flush()
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    response.headers["Location"] = f"/v1/datasets/{dataset_id}"
    return row


def _default_name(filename: str | None, fallback: str) -> str:
    base = safe_filename(filename, fallback)
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip", ".jsonl", ".json", ".txt"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or fallback
    return base


@router.get("", response_model=list[DatasetOut], summary="List datasets")
def list_datasets(
    session: SessionDep,
    owner: OwnerDep,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> list[Dataset]:
    """The caller's datasets, newest first."""
    return list_owned(session, Dataset, owner, limit, offset)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="Get a dataset")
def get_dataset(dataset_id: str, session: SessionDep, owner: OwnerDep) -> Dataset:
    """One dataset with its statistics."""
    return get_owned(session, Dataset, dataset_id, owner)


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset")
def delete_dataset(
    dataset_id: str, session: SessionDep, owner: OwnerDep, settings: SettingsDep
) -> Response:
    """Delete a dataset and its files; 409 while a queued or running job uses it."""
    row = get_owned(session, Dataset, dataset_id, owner)
    busy = session.scalar(
        select(Job.id).where(Job.dataset_id == dataset_id, Job.state.in_(sorted(ACTIVE_STATES)))
    )
    if busy is not None:
        raise Conflict(f"dataset {dataset_id!r} is used by job {busy!r}, which has not finished")
    session.delete(row)
    session.flush()
    shutil.rmtree(settings.effective_artifacts_dir / "datasets" / dataset_id, ignore_errors=True)
    return Response(status_code=204)
