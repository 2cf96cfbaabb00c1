"""The worker's Celery app: the service's app (`service.queue.make_celery`) plus the task module."""

from __future__ import annotations

from celery import Celery

from service.core.config import Settings
from service.queue import make_celery

TASK_MODULES = ("worker.tasks",)


def make_worker_celery(settings: Settings) -> Celery:
    """The Celery app a worker runs: the shared configuration, with this package's tasks."""
    return make_celery(settings, include=TASK_MODULES)
