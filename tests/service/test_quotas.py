"""Per-owner quotas: active training jobs and stored bytes; past one, 429 with Retry-After, and
another owner is not affected."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app

TINY = {"device": "cpu", "epochs": 1, "encoder": {"dim": 16}}
ROWS = "".join(
    json.dumps({"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]}) + "\n" for i in range(12)
).encode()


def _keys(settings: Settings, *owners: str) -> list[dict[str, str]]:
    headers = []
    with session_scope(settings.effective_database_url) as session:
        for owner in owners:
            _, token = create_api_key(session, owner)
            headers.append({"Authorization": f"Bearer {token}"})
    return headers


def test_active_jobs_per_owner(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_active_jobs_per_owner=2)
    with TestClient(create_app(settings)) as client:
        mia, ned = _keys(settings, "mia", "ned")
        ids = {}
        for name, headers in (("mia", mia), ("ned", ned)):
            files = {"file": ("d.jsonl", ROWS)}
            ids[name] = client.post("/v1/datasets", headers=headers, files=files).json()["id"]
        body = {"dataset_id": ids["mia"], "config": TINY}
        assert [client.post("/v1/jobs", headers=mia, json=body).status_code for _ in range(2)] == [
            202,
            202,
        ]
        third = client.post("/v1/jobs", headers=mia, json=body)
        assert third.status_code == 429 and third.headers["Retry-After"] == "1"
        assert "the limit is 2" in third.json()["detail"]
        other = {"dataset_id": ids["ned"], "config": TINY}
        assert client.post("/v1/jobs", headers=ned, json=other).status_code == 202
        first = client.get("/v1/jobs", headers=mia).json()[0]["id"]
        assert client.post(f"/v1/jobs/{first}/cancel", headers=mia).status_code == 202
        assert client.post("/v1/jobs", headers=mia, json=body).status_code == 202


def test_stored_bytes_per_owner(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_stored_bytes_per_owner=len(ROWS) + 10)
    with TestClient(create_app(settings)) as client:
        (ola,) = _keys(settings, "ola")
        assert (
            client.post("/v1/datasets", headers=ola, files={"file": ("d.jsonl", ROWS)}).status_code
            == 201
        )
        second = client.post("/v1/datasets", headers=ola, files={"file": ("e.jsonl", ROWS)})
        assert second.status_code == 429 and "quota" in second.json()["detail"]
        assert len(client.get("/v1/datasets", headers=ola).json()) == 1
        datasets_dir = settings.effective_artifacts_dir / "datasets"
        assert len(list(datasets_dir.iterdir())) == 1  # the refused upload left nothing behind
