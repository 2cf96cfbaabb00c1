"""The Celery app and the dispatcher: the one place that knows the broker.

The database is the source of truth for every job; the broker only carries "look at job X". The
API enqueues through `Dispatcher`; the worker (`worker.app`) builds its app with `make_celery`
and adds its task module. Task names live here so both sides agree without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu import Exchange, Queue

from service.core.config import Settings

TRAIN_TASK = "elmo.train"
PREDICT_TASK = "elmo.predict"


def make_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    """A Celery app for `settings`: Redis (or any broker URL) or the embedded filesystem broker.

    Queues `train` and `predict`, one job at a time, late acks, requeue on worker loss. Results are
    not stored by Celery: workers write job state to the database. `include` names the task
    modules a worker imports (the API only sends tasks by name and needs none).
    """
    app = Celery("elmo", broker=settings.effective_broker_url, include=list(include))
    transport_options: dict[str, object]
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


class Dispatcher:
    """Publishes job ids on the train/predict queues through the Celery app of the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = make_celery(settings)

    def send_train(self, job_id: str) -> None:
        """Enqueue a committed training job (a duplicate message is harmless: workers claim)."""
        self.celery.send_task(TRAIN_TASK, args=[job_id], queue=self.settings.train_queue)

    def send_predict(self, job_id: str) -> None:
        """Enqueue a committed batch-inference job."""
        self.celery.send_task(PREDICT_TASK, args=[job_id], queue=self.settings.predict_queue)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
