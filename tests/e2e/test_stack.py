"""End to end over HTTP: uvicorn + a Celery worker process + Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import pytest
from e2e_stack import MINI, TINY, Stack, wait_job

from elmo_core.fusion.similarity import QUERY_CHUNK
from elmo_core.parallel import available_cores

TEST_POINTS = 600
"""The trained job's test points: enough query chunks for its priors to run on several workers."""


@pytest.fixture(scope="module")
def trained(stack: Stack, mini_archive: Path) -> dict:
    """Upload debian-deps-mini and train a tiny model to completion (alice's)."""
    with mini_archive.open("rb") as fh:
        r = stack.alice.post("/v1/datasets", files={"file": (mini_archive.name, fh)})
    assert r.status_code == 201, r.text
    dataset = r.json()
    config = {**TINY, "data": {**TINY["data"], "max_test_points": TEST_POINTS}}
    r = stack.alice.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": config})
    assert r.status_code == 202, r.text
    job = wait_job(stack.alice, f"/v1/jobs/{r.json()['id']}")
    assert job["state"] == "succeeded", (job, stack.procs[1].tail())
    return {"dataset": dataset, "job": job}


def test_dataset_stats(trained: dict) -> None:
    dataset = trained["dataset"]
    assert (dataset["format"], dataset["num_labels"]) == ("lf-raw", 8779)
    assert (dataset["num_train"], dataset["num_test"]) == (3000, 750)
    assert dataset["stats"]["labels"]["seen_in_train"] == 7637


def test_job_progress_metrics_telemetry_logs(stack: Stack, trained: dict) -> None:
    job = trained["job"]
    progress = job["progress"]
    assert progress["epoch"] == 1 and progress["step"] == progress["total_steps"] > 0
    assert job["latest_metrics"]["P@1"] > 5.0  # a trained model beats chance (~0.1%) by far
    assert job["model_id"] and job["finished_at"] and job["attempt"] == 1
    history = stack.alice.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert [(h["epoch"], h["split"]) for h in history] == [(1, "validation")]  # selects the model
    assert history[0]["metrics"] != job["latest_metrics"]  # validation, not the reported test
    model = stack.alice.get(f"/v1/models/{job['model_id']}").json()
    assert (model["metrics"]["split"], model["metrics"]["epoch"]) == ("test", 1)
    assert model["metrics"]["metrics"] == job["latest_metrics"]  # the served model's test metrics
    assert job["latest_metrics_split"] == "test"
    records = stack.alice.get(f"/v1/jobs/{job['id']}/telemetry").json()["records"]
    kinds = [r["kind"] for r in records]
    assert kinds.count("static") == 1 and "epoch" in kinds
    phases = [r["phase"] for r in records if r["kind"] == "phase"]
    assert phases[:2] == ["featurizing", "priors"] and phases[-1] == "evaluating test"
    assert all(r["host_rss"] > 0 for r in records if r["kind"] == "phase")
    assert next(r for r in records if r["kind"] == "epoch")["cpu_peak_rss"] > 0
    png = stack.alice.get(f"/v1/jobs/{job['id']}/telemetry.png")
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    logs = [line["message"] for line in stack.alice.get(f"/v1/jobs/{job['id']}/logs").json()]
    assert logs[0] == "queued" and logs[-1].startswith("succeeded: model ")
    # The worker's pool child (started daemonic by Celery) forks its setup's workers.
    workers = min(available_cores(), math.ceil(TEST_POINTS / QUERY_CHUNK))
    planned = f"{TEST_POINTS} texts x 8,779 rows on {workers} CPU worker"
    assert any(planned in line for line in logs), logs
    listed = stack.alice.get("/v1/jobs", params={"state": "succeeded"}).json()
    assert job["id"] in [j["id"] for j in listed]


def test_predict_top5_with_label_texts(stack: Stack, trained: dict) -> None:
    model_id = trained["job"]["model_id"]
    model = stack.alice.get(f"/v1/models/{model_id}").json()
    assert model["num_labels"] == 8779 and model["size_bytes"] > 0
    texts = [line for line in (MINI / "tst_X.txt").read_text().splitlines()[:3]]
    r = stack.alice.post(f"/v1/models/{model_id}/predict", json={"texts": texts, "k": 5})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    label_texts = (MINI / "Y.txt").read_text().splitlines()
    assert len(predictions) == 3
    for row in predictions:
        assert len(row) == 5
        scores = [p["score"] for p in row]
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
        assert all(p["label"] == label_texts[p["label_id"]] for p in row)
    drop = [[predictions[0][0]["label_id"]], [], []]
    r = stack.alice.post(
        f"/v1/models/{model_id}/predict",
        json={"texts": texts, "k": 5, "exclude_label_ids": drop},
    )
    assert r.status_code == 200, r.text
    kept = r.json()["predictions"]
    assert [p["label_id"] for p in kept[0][:4]] == [p["label_id"] for p in predictions[0][1:]]
    assert len(kept[0]) == 5 and kept[1:] == predictions[1:]
    too_many = stack.alice.post(
        f"/v1/models/{model_id}/predict", json={"texts": ["x"] * 257, "k": 5}
    )
    assert too_many.status_code == 413
    assert too_many.headers["content-type"] == "application/problem+json"
    big_k = stack.alice.post(f"/v1/models/{model_id}/predict", json={"texts": ["x"], "k": 5000})
    assert big_k.status_code == 422


def test_predict_job_results(stack: Stack, trained: dict) -> None:
    model_id = trained["job"]["model_id"]
    texts = (MINI / "tst_X.txt").read_text().splitlines()[:20]
    body = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    r = stack.alice.post(
        f"/v1/models/{model_id}/predict-jobs",
        files={"file": ("texts.jsonl", body)},
        data={"k": "3"},
    )
    assert r.status_code == 202, r.text
    job = wait_job(stack.alice, f"/v1/predict-jobs/{r.json()['id']}")
    assert job["state"] == "succeeded", job
    rows = [json.loads(x) for x in stack.alice.get(job["results_url"]).text.splitlines()]
    assert [row["index"] for row in rows] == list(range(20))
    assert all(len(row["labels"]) == 3 for row in rows)
    direct = stack.alice.post(
        f"/v1/models/{model_id}/predict", json={"texts": texts[:1], "k": 3}
    ).json()["predictions"][0]
    assert [p["label_id"] for p in rows[0]["labels"]] == [p["label_id"] for p in direct]


def test_cancel_running_job(stack: Stack, trained: dict) -> None:
    config = {**TINY, "epochs": 400}
    r = stack.alice.post(
        "/v1/jobs", json={"dataset_id": trained["dataset"]["id"], "config": config}
    )
    job_id = r.json()["id"]
    running = wait_job(stack.alice, f"/v1/jobs/{job_id}", until=("running",))
    assert running["state"] == "running"
    r = stack.alice.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    final = wait_job(stack.alice, f"/v1/jobs/{job_id}")
    assert final["state"] == "cancelled" and final["model_id"] is None
    assert stack.alice.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_failing_job_reports_the_reason(stack: Stack, trained: dict) -> None:
    config = {**TINY, "encoder": {"name": "features", "dim": 16}}
    r = stack.alice.post(
        "/v1/jobs", json={"dataset_id": trained["dataset"]["id"], "config": config}
    )
    final = wait_job(stack.alice, f"/v1/jobs/{r.json()['id']}")
    assert final["state"] == "failed" and final["model_id"] is None
    assert "features" in final["failure_reason"], final["failure_reason"]


def test_idempotency_key_and_queued_cancel(stack: Stack, trained: dict) -> None:
    body = {"dataset_id": trained["dataset"]["id"], "config": {**TINY, "epochs": 400}}
    headers = {"Idempotency-Key": "once-" + trained["job"]["id"]}
    first = stack.alice.post("/v1/jobs", json=body, headers=headers)
    again = stack.alice.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = stack.alice.post("/v1/jobs", json={**body, "name": "x"}, headers=headers)
    assert other.status_code == 409
    assert stack.alice.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 202
    assert wait_job(stack.alice, f"/v1/jobs/{first.json()['id']}")["state"] == "cancelled"


def test_other_key_gets_404(stack: Stack, trained: dict) -> None:
    job, dataset = trained["job"], trained["dataset"]
    paths = [
        f"/v1/datasets/{dataset['id']}",
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/metrics",
        f"/v1/jobs/{job['id']}/telemetry",
        f"/v1/jobs/{job['id']}/telemetry.png",
        f"/v1/jobs/{job['id']}/logs",
        f"/v1/models/{job['model_id']}",
    ]
    for path in paths:
        assert stack.bob.get(path).status_code == 404, path
        assert stack.anonymous.get(path).status_code == 401, path
    r = stack.bob.post(f"/v1/models/{job['model_id']}/predict", json={"texts": ["a"]})
    assert r.status_code == 404
    assert stack.bob.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert stack.bob.delete(f"/v1/models/{job['model_id']}").status_code == 404
    assert stack.bob.get("/v1/jobs").json() == []
    assert stack.alice.get(f"/v1/models/{job['model_id']}").status_code == 200


def test_malformed_upload_names_file_and_line(stack: Stack, tmp_path: Path) -> None:
    lines = (MINI / "trn_X_Y.txt").read_text().splitlines()
    lines[4] = "17:1.0 banana"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(MINI.iterdir()):
            data = ("\n".join(lines) + "\n").encode() if path.name == "trn_X_Y.txt" else None
            info = tarfile.TarInfo(f"broken/{path.name}")
            payload = data if data is not None else path.read_bytes()
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    r = stack.alice.post("/v1/datasets", files={"file": ("broken.tar.gz", buffer.getvalue())})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["file"] == "broken/trn_X_Y.txt" and problem["line"] == 5
    assert "banana" in problem["reason"] or "label" in problem["reason"]


def test_plan_rejects_impossible_job(stack: Stack, trained: dict) -> None:
    huge = {"precision": "fp32", "batch_size": 4096, "encoder": {"dim": 8192}}
    r = stack.alice.post("/v1/plan", json={"num_labels": 50_000_000, "config": huge})
    assert r.status_code == 200
    plan = r.json()
    assert plan["fits"] is False and plan["gpu_memory_gib"] == 4.0
    assert plan["total_bytes"] > 50_000_000 * 8192 * 4
    r = stack.alice.post("/v1/jobs", json={"dataset_id": trained["dataset"]["id"], "config": huge})
    assert r.status_code == 422
    assert r.json()["plan"]["fits"] is False and "GiB" in r.json()["detail"]
    small = stack.alice.post("/v1/plan", json={"dataset_id": trained["dataset"]["id"]}).json()
    assert small["num_labels"] == 8779 and small["fits"] is True
