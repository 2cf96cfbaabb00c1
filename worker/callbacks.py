"""TrainerCallbacks that write what the trainer reports into the database, as it reports it."""

from __future__ import annotations

import math
import time
from typing import Any

from elmo_core.training import TrainerCallbacks
from service.core.db import session_scope
from service.jobs import lifecycle
from service.jobs.lifecycle import add_log, fenced_update
from service.models import Job, JobMetric, JobTelemetry, utcnow
from worker.lease import Heartbeat

PROGRESS_EVERY_S = 0.5
CANCEL_POLL_S = 1.0


def jsonable(value: Any) -> Any:
    """Plain JSON values (NaN/Inf become None; numpy scalars become floats/ints)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


class DBCallbacks(TrainerCallbacks):
    """Phase, progress (throttled), metrics, telemetry and logs -> the job's rows; cancel <- DB."""

    def __init__(
        self,
        db_url: str,
        job_id: str,
        attempt: int,
        epochs: int,
        heartbeat: Heartbeat,
        eval_split: str = "validation",
    ):
        self.db_url = db_url
        self.job_id = job_id
        self.attempt = attempt
        self.epochs = epochs
        self.eval_split = eval_split
        self.heartbeat = heartbeat
        self._last_progress = 0.0
        self._last_cancel_check = 0.0
        self._stop = False

    def _update(self, **values: Any) -> None:
        with session_scope(self.db_url) as session:
            fenced_update(session, Job, self.job_id, self.attempt, heartbeat_at=utcnow(), **values)

    def on_phase(self, phase: str) -> None:
        """Record the phase (loading, training, evaluating, saving)."""
        self._update(phase=phase)

    def on_progress(self, p: Any) -> None:
        """Record epoch/step/total/ETA at most every PROGRESS_EVERY_S (and at the last step)."""
        t = time.monotonic()
        last_step = p.total_steps is not None and p.step >= p.total_steps
        if t - self._last_progress < PROGRESS_EVERY_S and not last_step:
            return
        self._last_progress = t
        progress = jsonable(
            {
                "epoch": p.epoch,
                "epochs": self.epochs,
                "step": p.step,
                "total_steps": p.total_steps,
                "fraction": (p.step / p.total_steps) if p.total_steps else None,
                "eta_s": getattr(p, "eta_s", None),
                "throughput": getattr(p, "throughput", None),
                "loss": getattr(p, "loss", None),
            }
        )
        self._update(
            epoch=p.epoch,
            step=p.step,
            total_steps=p.total_steps,
            eta_s=progress["eta_s"],
            progress=progress,
        )

    def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        """Append to the metrics history and set the latest metrics, with the split evaluated
        after each epoch (the config's `eval.split`)."""
        clean = jsonable(metrics)
        split = self.eval_split
        with session_scope(self.db_url) as session:
            fenced_update(
                session,
                Job,
                self.job_id,
                self.attempt,
                latest_metrics=clean,
                latest_metrics_split=split,
            )
            session.add(JobMetric(job_id=self.job_id, epoch=int(epoch), split=split, metrics=clean))

    def on_telemetry(self, record: dict) -> None:
        """Append a telemetry record (memory per phase, throughput)."""
        with session_scope(self.db_url) as session:
            fenced_update(session, Job, self.job_id, self.attempt, heartbeat_at=utcnow())
            session.add(JobTelemetry(job_id=self.job_id, record=jsonable(record)))

    def on_log(self, message: str) -> None:
        """Append a log line."""
        with session_scope(self.db_url) as session:
            add_log(session, self.job_id, message)

    def should_stop(self) -> bool:
        """True once the job's cancel flag is set (read from the DB at most once a second)."""
        if self._stop or self.heartbeat.lost.is_set():
            return True
        t = time.monotonic()
        if t - self._last_cancel_check < CANCEL_POLL_S:
            return False
        self._last_cancel_check = t
        with session_scope(self.db_url) as session:
            self._stop = lifecycle.poll_cancel(session, self.job_id, self.attempt)
        return self._stop
