"""Uploaded datasets are parsed and validated in a child process (the validation worker), under a
memory and a time cap, a few at a time; the storage quota is checked before anything is parsed.
Real child processes, real archives: nothing of ours is mocked."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from upload_helpers import MINI, mini_files, tar_gz

from service.core.config import Settings
from service.core.dataset_validation import validate_dataset, validation_slot
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app

ROWS = "".join(
    json.dumps({"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]}) + "\n" for i in range(12)
).encode()


@contextmanager
def _app(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "val")
        yield client, {"Authorization": f"Bearer {token}"}


def _nothing_stored(client: TestClient, headers: dict[str, str], settings: Settings) -> None:
    artifacts = settings.effective_artifacts_dir
    assert list((artifacts / "datasets").glob("*")) == []
    assert list((artifacts / "tmp").glob("*")) == []  # no scratch left behind either
    assert client.get("/v1/datasets", headers=headers).json() == []


def test_the_dataset_is_parsed_in_another_process(tmp_path: Path) -> None:
    root = tmp_path / "mini"
    shutil.copytree(MINI, root)
    settings = Settings(home=tmp_path / "home")
    result = validate_dataset(root, "auto", settings, tmp_path / "work")
    assert result.pid != os.getpid()
    assert (result.format, result.num_labels, result.num_train, result.num_test) == (
        "lf-raw",
        8779,
        3000,
        750,
    )
    assert result.stats["labels"]["seen_in_train"] == 7637
    json.dumps(result.stats)  # only JSON came back, never the parsed arrays


def test_a_valid_upload_gets_201_with_the_statistics(client: TestClient, auth) -> None:
    headers = auth("val")
    r = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", ROWS)})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["name"], ds["format"], ds["num_labels"], ds["num_train"]) == ("d", "jsonl", 2, 12)
    assert (ds["num_test"], ds["num_features"]) == (0, None)
    assert ds["stats"]["train"]["points"] == 12
    assert client.get(f"/v1/datasets/{ds['id']}", headers=headers).json()["stats"] == ds["stats"]


def test_a_format_error_in_the_child_is_a_422_naming_file_and_line(
    client: TestClient, auth, settings: Settings
) -> None:
    headers = auth("val")
    files = mini_files()
    lines = files["tst_X_Y.txt"].decode().splitlines()
    lines[4] = "7:1.0 x"
    files["tst_X_Y.txt"] = ("\n".join(lines) + "\n").encode()
    archive = tar_gz(files, prefix="broken/")
    r = client.post("/v1/datasets", headers=headers, files={"file": ("b.tar.gz", archive)})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "urn:elmo:problem:dataset-format"
    assert (problem["file"], problem["line"]) == ("broken/tst_X_Y.txt", 5)
    assert problem["detail"].startswith("broken/tst_X_Y.txt:5: ")
    assert str(settings.home) not in r.text
    _nothing_stored(client, headers, settings)


def test_a_dataset_past_the_memory_cap_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", dataset_validation_memory_gib=0.001)
    with _app(settings) as (client, headers):
        archive = tar_gz(mini_files())
        r = client.post("/v1/datasets", headers=headers, files={"file": ("m.tar.gz", archive)})
        assert r.status_code == 413, r.text
        assert r.json()["type"] == "urn:elmo:problem:too-large"
        assert "needs more than 0.001 GiB of memory to validate" in r.json()["detail"]
        _nothing_stored(client, headers, settings)


def test_a_validation_past_the_time_cap_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", dataset_validation_timeout_seconds=0.01)
    with _app(settings) as (client, headers):
        r = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", ROWS)})
        assert r.status_code == 422, r.text
        assert "longer than 0.01 s" in r.json()["detail"]
        _nothing_stored(client, headers, settings)


def test_uploads_past_the_concurrency_limit_get_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_concurrent_dataset_validations=2)
    with _app(settings) as (client, headers):
        state = client.app.state
        with ExitStack() as held:  # both slots busy, as under two uploads being validated
            for _ in range(2):
                held.enter_context(validation_slot(state, settings))
            r = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", ROWS)})
            assert r.status_code == 429, r.text
            assert r.headers["Retry-After"] == "5"
            assert r.json()["type"] == "urn:elmo:problem:too-many-requests"
            assert "2 dataset uploads are being validated" in r.json()["detail"]
            _nothing_stored(client, headers, settings)
        r = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", ROWS)})
        assert r.status_code == 201, r.text  # the slots were given back


def test_the_quota_is_checked_on_the_upload_before_it_is_unpacked(tmp_path: Path) -> None:
    """An archive over the quota whose unpacking would fail (a '..' member): the quota's 429
    comes first, so nothing was unpacked."""
    evil = tar_gz({"../escape.txt": os.urandom(4096)})
    settings = Settings(home=tmp_path / "home", max_stored_bytes_per_owner=len(evil) - 1)
    with _app(settings) as (client, headers):
        r = client.post("/v1/datasets", headers=headers, files={"file": ("e.tar.gz", evil)})
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert "quota" in r.json()["detail"]
        _nothing_stored(client, headers, settings)
        assert not (tmp_path / "escape.txt").exists()


def test_the_quota_is_checked_on_the_unpacked_size_before_parsing(tmp_path: Path) -> None:
    """An archive that fits the quota packed but not unpacked, and is malformed: the quota's 429
    comes first, so nothing was parsed."""
    body = b'{"text": "a", "labels": ["x"]}\n' * 2000 + b"not json\n"
    archive = tar_gz({"train.jsonl": body})
    assert len(archive) < len(body)
    settings = Settings(home=tmp_path / "home", max_stored_bytes_per_owner=len(body) - 1)
    with _app(settings) as (client, headers):
        r = client.post("/v1/datasets", headers=headers, files={"file": ("d.tar.gz", archive)})
        assert r.status_code == 429, r.text
        assert f"storing {len(body)} more bytes" in r.json()["detail"]
        _nothing_stored(client, headers, settings)
    roomy = Settings(home=tmp_path / "roomy", max_stored_bytes_per_owner=None)
    with _app(roomy) as (client, headers):
        r = client.post("/v1/datasets", headers=headers, files={"file": ("d.tar.gz", archive)})
        assert r.status_code == 422 and r.json()["line"] == 2001  # what parsing would have said
