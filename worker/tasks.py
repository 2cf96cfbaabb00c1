"""Celery tasks: thin wrappers that hand a job id to its runner (settings from the environment)."""

from __future__ import annotations

from celery import shared_task

from service.core.config import get_settings
from service.queue import PREDICT_TASK, TRAIN_TASK
from worker.predict_job import run_predict_job
from worker.train_job import run_training_job


@shared_task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def train_task(self, job_id: str) -> str | None:  # type: ignore[no-untyped-def]
    """Run training job `job_id` (no-op if another worker holds it or it is finished)."""
    return run_training_job(get_settings(), job_id, worker=self.request.hostname)


@shared_task(name=PREDICT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def predict_task(self, job_id: str) -> str | None:  # type: ignore[no-untyped-def]
    """Run batch-inference job `job_id`."""
    return run_predict_job(get_settings(), job_id, worker=self.request.hostname)
