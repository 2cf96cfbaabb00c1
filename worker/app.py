"""The Celery app: queues `train` and `predict`, one job at a time, late acks, requeue on loss."""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from service.core.config import Settings


def make_celery(settings: Settings) -> Celery:
    """A Celery app for `settings`: Redis (or any broker URL) or the embedded filesystem broker.

    Results are not stored by Celery: workers write job state to the database.
    """
    app = Celery("elmo", broker=settings.effective_broker_url, include=["worker.tasks"])
    if settings.broker_url:
        transport_options = {"visibility_timeout": settings.max_job_seconds + 3600}
    else:
        settings.ensure_dirs()
        folder = str(settings.broker_dir / "queue")
        transport_options = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "processed_folder": str(settings.broker_dir / "processed"),
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.5,
        }
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=settings.train_queue,
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (settings.train_queue, settings.predict_queue)
        ],
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.conf.elmo_settings = settings
    return app
