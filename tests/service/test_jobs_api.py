"""Jobs through the API without a worker: queueing, plan check, idempotency, cancel, views."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app
from service.models import Job, Model

TINY = {"device": "cpu", "epochs": 1, "encoder": {"dim": 16}}


@pytest.fixture
def dataset(client: TestClient, auth) -> tuple[dict, dict]:
    headers = auth("alice")
    rows = [{"text": f"text {i}", "labels": ["a", "b", "c"][: 1 + i % 3]} for i in range(12)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", body)})
    assert r.status_code == 201
    return headers, r.json()


def test_create_job_is_queued_with_a_plan(client: TestClient, dataset) -> None:
    headers, ds = dataset
    r = client.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": TINY})
    assert r.status_code == 202, r.text
    job = r.json()
    assert (job["state"], job["attempt"], job["model_id"]) == ("queued", 0, None)
    assert job["memory_plan"]["num_labels"] == 3 and job["memory_plan"]["total_bytes"] > 0
    assert job["config"]["encoder"]["dim"] == 16 and job["config"]["precision"] == "fp8"
    assert [j["id"] for j in client.get("/v1/jobs?state=queued", headers=headers).json()] == [
        job["id"]
    ]
    assert client.get("/v1/jobs?state=running", headers=headers).json() == []
    assert client.get("/v1/jobs?state=bogus", headers=headers).status_code == 422
    logs = client.get(f"/v1/jobs/{job['id']}/logs", headers=headers).json()
    assert [line["message"] for line in logs] == ["queued"]
    assert client.get(f"/v1/jobs/{job['id']}/metrics", headers=headers).json() == []
    assert client.get(f"/v1/jobs/{job['id']}/telemetry", headers=headers).json()["records"] == []
    png = client.get(f"/v1/jobs/{job['id']}/telemetry.png", headers=headers)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_job_too_big_for_the_worker_gpu_is_refused(client: TestClient, dataset) -> None:
    headers, ds = dataset
    huge = {"precision": "fp32", "batch_size": 8192, "encoder": {"dim": 65536}}
    r = client.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": huge})
    assert r.status_code == 422
    problem = r.json()
    assert problem["plan"]["fits"] is False and problem["plan"]["gpu_memory_gib"] == 4.0
    assert f"{problem['plan']['total_gib']} GiB" in problem["detail"]
    on_cpu = {**huge, "device": "cpu"}
    r = client.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": on_cpu})
    assert r.status_code == 202 and r.json()["memory_plan"]["fits"] is None


def test_invalid_config_and_unknown_dataset(client: TestClient, dataset) -> None:
    headers, ds = dataset
    r = client.post(
        "/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": {"epochs": 0}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "config", "epochs"]
    r = client.post("/v1/jobs", headers=headers, json={"dataset_id": "ds_nope", "config": TINY})
    assert r.status_code == 404


def test_idempotency_key(client: TestClient, dataset) -> None:
    headers, ds = dataset
    body = {"dataset_id": ds["id"], "config": TINY}
    idem = {**headers, "Idempotency-Key": "k1"}
    first = client.post("/v1/jobs", headers=idem, json=body)
    second = client.post("/v1/jobs", headers=idem, json=body)
    assert first.json()["id"] == second.json()["id"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert client.post("/v1/jobs", headers=idem, json={**body, "name": "n"}).status_code == 409
    assert len(client.get("/v1/jobs", headers=headers).json()) == 1


def test_predict_job_idempotency_key(client: TestClient, settings: Settings, auth) -> None:
    headers = auth("alice")
    with session_scope(settings.effective_database_url) as session:
        session.add(
            Model(
                id="mdl_1",
                owner="alice",
                job_id="job_x",
                dataset_id="ds_x",
                config={},
                num_labels=3,
                size_bytes=0,
                path="/nowhere",
            )
        )
    idem = {**headers, "Idempotency-Key": "p1"}

    def post(texts: bytes = b'{"text": "a"}\n', k: int = 5):
        files = {"file": ("t.jsonl", texts)}
        return client.post(
            "/v1/models/mdl_1/predict-jobs", headers=idem, files=files, data={"k": k}
        )

    first, second = post(), post()
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert post(texts=b'{"text": "b"}\n').status_code == 409  # other texts, same key
    assert post(k=6).status_code == 409
    assert len(client.get("/v1/predict-jobs", headers=headers).json()) == 1


def test_cancel_queued_job_and_ownership(client: TestClient, dataset, auth) -> None:
    headers, ds = dataset
    job = client.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"]}).json()
    bob = auth("bob")
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=bob).status_code == 404
    for suffix in ("", "/metrics", "/telemetry", "/telemetry.png", "/logs"):
        assert client.get(f"/v1/jobs/{job['id']}{suffix}", headers=bob).status_code == 404
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409 and again.json()["type"] == "urn:elmo:problem:conflict"
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=headers).status_code == 204


def test_dataset_in_use_cannot_be_deleted(client: TestClient, dataset) -> None:
    headers, ds = dataset
    client.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": TINY})
    r = client.delete(f"/v1/datasets/{ds['id']}", headers=headers)
    assert r.status_code == 409


def test_plan_endpoint(client: TestClient, dataset) -> None:
    headers, ds = dataset
    r = client.post("/v1/plan", headers=headers, json={"dataset_id": ds["id"]})
    assert r.status_code == 200 and r.json()["num_labels"] == 3 and r.json()["fits"] is True
    huge = {"num_labels": 10**8, "config": {"precision": "bf16"}, "gpu_memory_gib": 80}
    plan = client.post("/v1/plan", headers=headers, json=huge).json()
    assert plan["fits"] is False and plan["parts_bytes"]["head_weights"] >= 10**8 * 512 * 2
    assert client.post("/v1/plan", headers=headers, json={}).status_code == 422


def test_health_metrics_and_problems(client: TestClient, dataset) -> None:
    headers, _ = dataset
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {"status": "ok", "database": "ok", "broker": "ok"}
    assert client.get("/metrics").status_code == 401  # behind a key
    text = client.get("/metrics", headers=headers).text
    assert 'elmo_jobs{state="queued"} 0.0' in text
    assert 'elmo_http_requests_total{method="POST",route="/v1/datasets",status="201"} 1.0' in text
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/openapi.json").json()["info"]["title"] == "elmo"
    assert client.get("/docs").status_code == 200


def test_broker_down_job_is_kept_for_the_reconciler(tmp_path) -> None:
    settings = Settings(home=tmp_path / "h", broker_url="redis://127.0.0.1:1/0")  # nothing there
    with TestClient(create_app(settings)) as down:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "alice")
        headers = {"Authorization": f"Bearer {token}"}
        body = b'{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["y"]}\n'
        ds = down.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", body)}).json()
        r = down.post("/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": TINY})
        assert r.status_code == 202 and r.json()["state"] == "queued"
        assert down.get("/readyz").json()["checks"]["broker"].startswith("error")
        with session_scope(settings.effective_database_url) as session:
            assert session.get(Job, r.json()["id"]).enqueued_at is None  # resent at the next pass
