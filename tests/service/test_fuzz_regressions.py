"""Regressions found by the seeded schemathesis runs (docs/fuzzing.md), on SQLite and, when it is
reachable, on a fresh PostgreSQL database (the bug was PostgreSQL's).

- An id holding a NUL byte, in a path or in a body's `dataset_id`, was a 500 on PostgreSQL
  ("PostgreSQL text fields cannot contain NUL (0x00) bytes"); SQLite just found nothing. It is
  now the same 404 problem+json as any unknown id, on both stores.
- A write that hits a full disk is a 507 problem+json ("insufficient-storage"), not a 500.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from upload_helpers import mini_files, tar_gz

import service.core.uploads
from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app

POSTGRES_ADMIN_URL = os.environ.get(
    "ELMO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NUL_IDS = {  # ids with a NUL byte, as they appear in a path
    "dataset": "ds_%00nope",
    "job": "job_%00nope",
    "model": "mdl_%00",
    "pj": "%00",
}  # in paths
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'elmo.db'}"
        return
    psycopg = pytest.importorskip("psycopg")
    name = f"elmo_fuzz_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        from service.core.db import get_engine

        get_engine(f"{base}/{name}").dispose()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A TestClient over `database_url` and the headers of a full key."""
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "nul")
        yield client, {"Authorization": f"Bearer {token}"}


def _nul_requests() -> list[tuple[str, str, dict]]:
    ds, job, mdl, pj = (NUL_IDS[k] for k in ("dataset", "job", "model", "pj"))
    return [
        ("GET", f"/v1/datasets/{ds}", {}),
        ("DELETE", f"/v1/datasets/{ds}", {}),
        ("GET", f"/v1/jobs/{job}", {}),
        ("GET", f"/v1/jobs/{job}/logs", {}),
        ("GET", f"/v1/jobs/{job}/metrics", {}),
        ("GET", f"/v1/jobs/{job}/telemetry", {}),
        ("GET", f"/v1/jobs/{job}/telemetry.png", {}),
        ("POST", f"/v1/jobs/{job}/cancel", {}),
        ("GET", f"/v1/models/{mdl}", {}),
        ("DELETE", f"/v1/models/{mdl}", {}),
        ("POST", f"/v1/models/{mdl}/predict", {"json": {"texts": ["a"]}}),
        ("POST", f"/v1/models/{mdl}/predict-jobs", {"files": {"file": ("t.txt", b"a\n")}}),
        ("GET", f"/v1/predict-jobs/{pj}", {}),
        ("GET", f"/v1/predict-jobs/{pj}/results", {}),
        ("POST", f"/v1/predict-jobs/{pj}/cancel", {}),
        ("DELETE", "/v1/keys/key_%00", {}),
        ("POST", "/v1/jobs", {"json": {"dataset_id": "ds_\x00nope"}}),
        ("POST", "/v1/plan", {"json": {"dataset_id": "ds_\x00nope"}}),
    ]


@pytest.mark.parametrize(("method", "path", "kwargs"), _nul_requests())
def test_an_id_with_a_nul_byte_is_a_404_on_every_store(
    api: tuple[TestClient, dict[str, str]], method: str, path: str, kwargs: dict
) -> None:
    client, headers = api
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "urn:elmo:problem:not-found"


def test_a_full_disk_during_an_upload_is_a_507(
    api: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, headers = api

    def full(*_args: object, **_kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/elmo/artifacts/tmp/x")

    monkeypatch.setattr(service.core.uploads, "save_stream", full)
    archive = tar_gz(mini_files(), prefix="mini/")
    response = client.post(
        "/v1/datasets", headers=headers, files={"file": ("mini.tar.gz", archive)}
    )
    assert response.status_code == 507, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == "urn:elmo:problem:insufficient-storage"
    assert "disk is full" in body["detail"] and "/srv" not in response.text
    assert client.get("/v1/datasets", headers=headers).json() == []
