"""hf: encoders only from the operator's allowlist, and no server path in the refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app


def _client_and_dataset(settings: Settings) -> tuple[TestClient, dict[str, str], str]:
    client = TestClient(create_app(settings))
    client.__enter__()
    with session_scope(settings.effective_database_url) as session:
        _, token = create_api_key(session, "olga")
    headers = {"Authorization": f"Bearer {token}"}
    rows = [{"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(12)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    ds = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", body)}).json()
    return client, headers, ds["id"]


def test_hf_encoders_only_from_allowed_directories(tmp_path: Path, tiny_bert_dir: Path) -> None:
    allowed = tmp_path / "models"
    shutil.copytree(tiny_bert_dir, allowed / "tiny")
    outside = tmp_path / "elsewhere"
    shutil.copytree(tiny_bert_dir, outside)
    (allowed / "escape").symlink_to(outside)
    settings = Settings(home=tmp_path / "home", encoder_dirs=[allowed])
    client, headers, dataset_id = _client_and_dataset(settings)
    try:
        for name in ("hf:~", f"hf:{outside}", f"hf:{allowed}/escape", f"hf:{allowed}/../elsewhere"):
            config = {"device": "cpu", "encoder": {"name": name}}
            r = client.post(
                "/v1/jobs", headers=headers, json={"dataset_id": dataset_id, "config": config}
            )
            assert r.status_code == 422, name
            assert "ELMO_ENCODER_DIRS" in r.json()["detail"]
            assert str(tmp_path) not in r.text and "/root" not in r.text
        config = {"device": "cpu", "encoder": {"name": f"hf:{allowed}/tiny", "max_length": 16}}
        r = client.post(
            "/v1/jobs", headers=headers, json={"dataset_id": dataset_id, "config": config}
        )
        assert r.status_code == 202, r.text
        assert [j["state"] for j in client.get("/v1/jobs", headers=headers).json()] == ["queued"]
    finally:
        client.__exit__(None, None, None)


def test_without_an_allowlist_hf_encoders_are_refused(tmp_path: Path, tiny_bert_dir: Path) -> None:
    client, headers, dataset_id = _client_and_dataset(Settings(home=tmp_path / "home"))
    try:
        config = {"device": "cpu", "encoder": {"name": f"hf:{tiny_bert_dir}"}}
        r = client.post(
            "/v1/jobs", headers=headers, json={"dataset_id": dataset_id, "config": config}
        )
        assert r.status_code == 422 and "not enabled" in r.json()["detail"]
        assert str(tiny_bert_dir) not in r.text
    finally:
        client.__exit__(None, None, None)
