"""Claims, fenced writes and the reconciler on a real SQLite database (no broker process)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.core.config import Settings
from service.core.db import session_scope
from service.core.migrate import upgrade_database
from service.jobs.lifecycle import LeaseLost, claim, fenced_update
from service.models import Job, JobLog
from service.models import utcnow as now
from service.queue import Dispatcher
from worker.reconcile import reconcile


class RecordingDispatcher(Dispatcher):
    """A real Dispatcher whose sends are also recorded (the filesystem broker stays real)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[str] = []

    def send_train(self, job_id: str) -> None:
        self.sent.append(job_id)
        super().send_train(job_id)


@pytest.fixture
def db(tmp_path) -> tuple[Settings, str]:
    settings = Settings(home=tmp_path / "home", job_lease_seconds=60)
    settings.ensure_dirs()
    upgrade_database(settings.effective_database_url)
    with session_scope(settings.effective_database_url) as session:
        session.add(Job(id="job_1", owner="o", dataset_id="ds", config={}, enqueued_at=now()))
    return settings, settings.effective_database_url


def test_claim_is_exclusive_and_counts_attempts(db) -> None:
    _, url = db
    with session_scope(url) as session:
        assert claim(session, Job, "job_1", "w1") == 1
    with session_scope(url) as session:
        assert claim(session, Job, "job_1", "w2") == 0
        job = session.get(Job, "job_1")
        assert (job.state, job.worker, job.attempt) == ("running", "w1", 1)


def test_reconciler_requeues_a_job_whose_worker_died(db) -> None:
    settings, url = db
    with session_scope(url) as session:
        attempt = claim(session, Job, "job_1", "w1")
    dispatcher = RecordingDispatcher(settings)
    assert reconcile(settings, dispatcher) == {"requeued": [], "resent": []}
    with session_scope(url) as session:
        session.get(Job, "job_1").heartbeat_at = now() - timedelta(seconds=61)
    assert reconcile(settings, dispatcher)["requeued"] == ["job_1"]
    assert dispatcher.sent == ["job_1"]
    assert len(list((settings.broker_dir / "queue").iterdir())) == 1  # a real message
    with session_scope(url) as session, pytest.raises(LeaseLost):  # the old worker is fenced
        fenced_update(session, Job, "job_1", attempt, phase="training")
    with session_scope(url) as session:
        assert claim(session, Job, "job_1", "w2") == 2
        logs = [row.message for row in session.query(JobLog).filter_by(job_id="job_1")]
        assert any("lost" in m and "re-queued" in m for m in logs)


def test_reconciler_resends_old_queued_jobs_only(db) -> None:
    settings, url = db
    dispatcher = RecordingDispatcher(settings)
    assert reconcile(settings, dispatcher)["resent"] == []
    with session_scope(url) as session:
        session.get(Job, "job_1").enqueued_at = now() - timedelta(hours=1)
        session.add(Job(id="job_2", owner="o", dataset_id="ds", config={}, enqueued_at=None))
        session.add(Job(id="job_3", owner="o", dataset_id="ds", config={}, cancel_requested=True))
    assert sorted(reconcile(settings, dispatcher)["resent"]) == ["job_1", "job_2"]
    assert reconcile(settings, dispatcher)["resent"] == []  # enqueued_at was refreshed


def test_a_job_lost_on_every_attempt_fails_at_the_retry_limit(tmp_path) -> None:
    """A poison job (its worker dies each time) is retried up to max_job_attempts, then fails
    with the reason, and is not sent again."""
    settings = Settings(home=tmp_path / "home", job_lease_seconds=60, max_job_attempts=2)
    settings.ensure_dirs()
    upgrade_database(settings.effective_database_url)
    url = settings.effective_database_url
    with session_scope(url) as session:
        session.add(Job(id="job_p", owner="o", dataset_id="ds", config={}, enqueued_at=now()))
    dispatcher = RecordingDispatcher(settings)
    for attempt in (1, 2):
        with session_scope(url) as session:
            assert claim(session, Job, "job_p", f"w{attempt}") == attempt
            session.flush()
            session.get(Job, "job_p").heartbeat_at = now() - timedelta(seconds=61)
        requeued = reconcile(settings, dispatcher)["requeued"]
        assert requeued == (["job_p"] if attempt == 1 else [])
    assert dispatcher.sent == ["job_p"]
    with session_scope(url) as session:
        job = session.get(Job, "job_p")
        assert job.state == "failed" and job.finished_at is not None
        assert job.failure_reason.startswith("worker lost 2 times")
        assert claim(session, Job, "job_p", "w3") == 0
        logs = [row.message for row in session.query(JobLog).filter_by(job_id="job_p")]
        assert logs[-1].endswith("failed: lost on 2 attempts")
