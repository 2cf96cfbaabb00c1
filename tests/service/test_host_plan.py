"""The host RAM plan through the API: reported by /v1/plan, a job that does not fit is refused."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app

TINY = {"device": "cpu", "epochs": 1, "encoder": {"dim": 16}}


def test_host_plan_is_reported_and_enforced(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", worker_host_memory_gib=1.0)
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "hana")
        headers = {"Authorization": f"Bearer {token}"}
        rows = [{"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(12)]
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        ds = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", body)}).json()
        plan = client.post("/v1/plan", headers=headers, json={"dataset_id": ds["id"]}).json()
        host = plan["host"]
        assert host["host_memory_gib"] == 1.0 and host["fits"] is False
        assert host["parts_bytes"]["framework"] == 2 << 30
        assert host["total_bytes"] == sum(host["parts_bytes"].values())
        r = client.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": TINY})
        assert r.status_code == 422
        problem = r.json()
        refused = problem["plan"]["host"]
        assert refused["fits"] is False and refused["total_bytes"] < host["total_bytes"]
        assert f"about {refused['total_gib']} GiB of host RAM" in problem["detail"]
        assert client.get("/v1/jobs", headers=headers).json() == []
        assert (
            client.post("/v1/plan", headers=headers, json={"num_labels": 5}).json()["host"] is None
        )


def test_huge_integers_get_a_422_naming_the_field(tmp_path: Path) -> None:
    """Integers past every bound (10^400) are refused at submission, never a 500 in a planner."""
    settings = Settings(home=tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "ivan")
        headers = {"Authorization": f"Bearer {token}"}
        huge = 10**400
        r = client.post("/v1/plan", headers=headers, json={"num_labels": huge})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "num_labels"]
        body = {"num_labels": 10, "config": {"batch_size": huge}}
        r = client.post("/v1/plan", headers=headers, json=body)
        assert r.status_code == 422
        assert r.json()["errors"][0]["loc"][:3] == ["body", "config", "batch_size"]
        r = client.post(
            "/v1/jobs", headers=headers, json={"dataset_id": "ds_x", "config": {"epochs": huge}}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["loc"][:3] == ["body", "config", "epochs"]
