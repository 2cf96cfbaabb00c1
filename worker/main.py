"""Start a Celery worker process for elmo: migrations, the reconciler, fork-safe DB engines,
jobs whose setup forks its workers."""

from __future__ import annotations

import socket
import warnings

from celery.platforms import SecurityWarning
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from elmo_core.parallel import allow_children
from service.core.config import Settings
from service.core.db import forget_engines_after_fork
from service.core.migrate import upgrade_database
from worker.app import make_worker_celery
from worker.reconcile import Reconciler


@worker_process_init.connect
def _fresh_engines_in_child(**_: object) -> None:
    """A forked pool child must not reuse the parent's DB connections."""
    forget_engines_after_fork()


@worker_process_init.connect
def _parallel_setup_in_child(**_: object) -> None:
    """A pool child runs a whole job: let its setup phases fork their workers (Celery starts it
    daemonic, which would leave featurizing and the priors on one core)."""
    allow_children()


def run_worker(
    settings: Settings,
    queues: list[str],
    concurrency: int = 1,
    hostname: str | None = None,
    loglevel: str = "INFO",
    reconcile: bool = True,
    quiet: bool = False,
) -> None:
    """Run a worker consuming `queues` (names without the prefix: train, predict) until stopped.

    `quiet` (what `elmo serve` asks for) drops Celery's start-up banner and its warning about
    running as root: a local worker that accepts only JSON messages from its own API, run by
    whoever runs `elmo serve` (often root in a container), has nothing to act on there.
    """
    settings.ensure_dirs()
    if settings.run_migrations:
        upgrade_database(settings.effective_database_url)
    app = make_worker_celery(settings)
    names = {"train": settings.train_queue, "predict": settings.predict_queue}
    unknown = [q for q in queues if q not in names]
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}: choose from train, predict")
    reconciler = Reconciler(settings) if reconcile else None
    if reconciler is not None:
        worker_ready.connect(lambda **_: reconciler.start(), weak=False)
        worker_shutdown.connect(lambda **_: reconciler.stop(), weak=False)
    node = hostname or f"elmo-{'-'.join(queues)}@{socket.gethostname()}"
    if quiet:
        warnings.filterwarnings("ignore", category=SecurityWarning)
    app.worker_main(
        [
            *(["--quiet"] if quiet else []),
            "worker",
            f"--queues={','.join(names[q] for q in queues)}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--prefetch-multiplier=1",
            "--max-tasks-per-child=1",
            f"--hostname={node}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
