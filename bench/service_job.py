"""A training job through the real service (`elmo serve`: API + Celery worker + the embedded
broker and database), timed from its own telemetry: where the job's setup goes when it runs in a
worker's pool child rather than `elmo train`. Prints one JSON row: the phases' seconds, the
epochs', the test metrics of the served model, the job's wall time, and the log lines that name
the priors' CPU workers (how many processes the setup ran on).

    python bench/service_job.py ../shared/datasets/debian-deps --home /tmp/svc-home
    python bench/service_job.py examples/debian-deps-mini --home /tmp/svc --config '{"epochs": 2}'
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
import time
from datetime import date
from pathlib import Path

import httpx
from local_service import local_service

FINAL = ("succeeded", "failed", "cancelled")


def archive(folder: Path) -> bytes:
    """`folder` as an in-memory .tar.gz (the upload's body)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="an LF raw-text dataset folder")
    parser.add_argument("--home", type=Path, required=True, help="ELMO_HOME (emptied first)")
    parser.add_argument("--port", type=int, default=8193)
    parser.add_argument("--config", default="{}", help="the job's config, JSON")
    args = parser.parse_args()
    with local_service("serve", args.home, args.port) as service:
        client = httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {service.key}"}, timeout=600
        )
        upload = client.post(
            "/v1/datasets", files={"file": (f"{args.data.name}.tar.gz", archive(args.data))}
        )
        upload.raise_for_status()
        config = json.loads(args.config)
        started = time.perf_counter()
        response = client.post(
            "/v1/jobs", json={"dataset_id": upload.json()["id"], "config": config}
        )
        response.raise_for_status()
        job_id = response.json()["id"]
        while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in FINAL:
            time.sleep(0.5)
        wall = time.perf_counter() - started
        records = client.get(f"/v1/jobs/{job_id}/telemetry").json()["records"]
        logs = [line["message"] for line in client.get(f"/v1/jobs/{job_id}/logs").json()]
        phases = [r for r in records if r["kind"] == "phase"]
        epochs = [r for r in records if r["kind"] == "epoch"]
        metrics = job["latest_metrics"] or {}
        row = {
            "case": "service job",
            "data": args.data.name,
            "config": config,
            "state": job["state"],
            "failure": job.get("failure_reason"),
            "wall_s": round(wall, 1),
            "phases": {r["phase"]: round(r["seconds"], 2) for r in phases},
            "epoch_s": [round(r.get("seconds", 0.0), 2) for r in epochs],
            "split": job.get("latest_metrics_split"),
            "P@1": metrics.get("P@1"),
            "PSP@5": metrics.get("PSP@5"),
            "worker_lines": [line for line in logs if "CPU worker" in line],
            "cores": len(os.sched_getaffinity(0)),
            "date": date.today().isoformat(),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
