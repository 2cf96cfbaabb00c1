"""Dataset upload, validation errors as problem+json, limits, ownership, delete."""

from __future__ import annotations

import io
import json
import zipfile

from fastapi.testclient import TestClient
from upload_helpers import mini_files, tar_gz

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app


def test_upload_archive_gives_stats_and_is_owned(client: TestClient, auth) -> None:
    alice, bob = auth("alice"), auth("bob")
    archive = tar_gz(mini_files(), prefix="debian-deps-mini/")
    r = client.post("/v1/datasets", headers=alice, files={"file": ("mini.tar.gz", archive)})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["name"], ds["format"], ds["num_labels"]) == ("mini", "lf-raw", 8779)
    assert (ds["num_train"], ds["num_test"]) == (3000, 750)
    assert ds["stats"]["labels"]["seen_in_train"] == 7637
    assert r.headers["location"] == f"/v1/datasets/{ds['id']}"
    assert client.get(f"/v1/datasets/{ds['id']}", headers=alice).json()["id"] == ds["id"]
    assert client.get(f"/v1/datasets/{ds['id']}", headers=bob).status_code == 404
    assert client.get("/v1/datasets", headers=bob).json() == []
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=bob).status_code == 404
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=alice).status_code == 204
    assert client.get(f"/v1/datasets/{ds['id']}", headers=alice).status_code == 404


def test_upload_jsonl_file_and_zip(client: TestClient, auth) -> None:
    alice = auth("alice")
    rows = [{"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(10)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = client.post("/v1/datasets", headers=alice, files={"file": ("tiny.jsonl", body)})
    assert r.status_code == 201, r.text
    assert (r.json()["format"], r.json()["num_labels"], r.json()["num_train"]) == ("jsonl", 2, 10)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("train.jsonl", body)
    r = client.post("/v1/datasets", headers=alice, files={"file": ("t.zip", buffer.getvalue())})
    assert r.status_code == 201 and r.json()["format"] == "jsonl"


def test_malformed_dataset_names_file_and_line(client: TestClient, auth) -> None:
    files = mini_files()
    lines = files["trn_X_Y.txt"].decode().splitlines()
    lines[2] = "12:1.0 99999999:1.0"
    files["trn_X_Y.txt"] = ("\n".join(lines) + "\n").encode()
    r = client.post(
        "/v1/datasets", headers=auth("a"), files={"file": ("bad.tar.gz", tar_gz(files))}
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (problem["file"], problem["line"]) == ("trn_X_Y.txt", 3)
    assert problem["type"] == "urn:elmo:problem:dataset-format" and "99999999" in problem["reason"]
    assert "/tmp" not in problem["detail"] and "home" not in problem["detail"]


def test_jsonl_error_names_line(client: TestClient, auth) -> None:
    body = b'{"text": "a", "labels": ["x"]}\n{"text": 5, "labels": ["y"]}\n'
    r = client.post("/v1/datasets", headers=auth("a"), files={"file": ("d.jsonl", body)})
    assert r.status_code == 422
    assert (r.json()["file"], r.json()["line"]) == ("d.jsonl", 2)


def test_unsafe_archive_and_types(client: TestClient, auth) -> None:
    alice = auth("a")
    evil = tar_gz({"../escape.txt": b"x"})
    r = client.post("/v1/datasets", headers=alice, files={"file": ("e.tar.gz", evil)})
    assert r.status_code == 422 and "'..'" in r.json()["detail"]
    r = client.post("/v1/datasets", headers=alice, files={"file": ("d.exe", b"MZ")})
    assert r.status_code == 415
    r = client.post("/v1/datasets", headers=alice, files={"file": ("d.jsonl", b"")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = client.post("/v1/datasets", headers=alice, files={"file": ("e.tar.gz", tar_gz({}))})
    assert r.status_code == 422 and "empty" in r.json()["detail"]


def test_upload_over_the_limit_is_413(tmp_path) -> None:
    settings = Settings(home=tmp_path / "h", max_upload_bytes=1000)
    with TestClient(create_app(settings)) as client:
        from service.core.db import session_scope
        from service.core.security import create_api_key

        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "a")
        headers = {"Authorization": f"Bearer {token}"}
        big = tar_gz(mini_files())
        r = client.post("/v1/datasets", headers=headers, files={"file": ("m.tar.gz", big)})
        assert r.status_code == 413 and r.json()["status"] == 413
        assert list((settings.effective_artifacts_dir / "datasets").glob("*")) == []


def test_requests_without_a_valid_key_are_401(client: TestClient) -> None:
    r = client.get("/v1/datasets")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.get("/v1/datasets", headers={"Authorization": "Bearer elmo_nope"})
    assert r.status_code == 401 and "unknown" in r.json()["detail"]


def test_declared_oversize_body_is_refused_before_reading(tmp_path) -> None:
    settings = Settings(home=tmp_path / "h", max_upload_bytes=1000)
    with TestClient(create_app(settings)) as client:
        big = b"x" * (2 << 20)
        r = client.post("/v1/datasets", files={"file": ("d.jsonl", big)})
        assert r.status_code == 401  # no key: refused before a byte of the body is read
        assert r.headers["www-authenticate"] == "Bearer"
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "kim")
        headers = {"Authorization": f"Bearer {token}"}
        r = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", big)})
        assert r.status_code == 413  # declared too large: refused before parsing
        assert "exceeds the limit" in r.json()["detail"]


def test_a_streamed_body_is_cut_off_at_the_limit(tmp_path) -> None:
    """A chunked upload (no Content-Length) past the limit gets 413 and leaves nothing stored."""
    settings = Settings(home=tmp_path / "h", max_upload_bytes=1000)
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "lee")
        boundary = "elmoboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="d.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()

        def chunks():
            yield head
            for _ in range(64):
                yield b"x" * (64 << 10)  # 4 MiB in all, far past 1000 bytes + the envelope
            yield f"\r\n--{boundary}--\r\n".encode()

        r = client.post(
            "/v1/datasets",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            content=chunks(),
        )
        assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
        assert list((settings.effective_artifacts_dir / "datasets").glob("*")) == []
        assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).json() == []
        anonymous = client.post(
            "/v1/datasets",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=chunks(),
        )
        assert anonymous.status_code == 401  # no key: answered before the stream is read


def test_a_predict_body_is_capped_by_the_character_limit_not_the_json_limit(tmp_path) -> None:
    """A predict call may carry at most 6 bytes per allowed character (+1 MiB): a bigger body is
    refused before it is parsed, while other JSON routes keep the general 64 MiB limit."""
    settings = Settings(home=tmp_path / "h", max_predict_chars=1000)
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "pat")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = b'{"texts": ["' + b"x" * (2 << 20) + b'"]}'
        r = client.post("/v1/models/mdl_nope/predict", headers=headers, content=body)
        assert r.status_code == 413, r.text
        assert f"exceeds the limit of {6 * 1000 + (1 << 20)} bytes" in r.json()["detail"]
        r = client.post("/v1/jobs", headers=headers, content=body)
        assert r.status_code == 422  # the same size is read and validated on another route
