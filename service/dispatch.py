"""Send "work on job X" messages to the workers (the only thing the broker carries)."""

from __future__ import annotations

from service.core.config import Settings

TRAIN_TASK = "elmo.train"
PREDICT_TASK = "elmo.predict"


class Dispatcher:
    """Publishes job ids on the train/predict queues through the Celery app of the settings."""

    def __init__(self, settings: Settings) -> None:
        from worker.app import make_celery

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
