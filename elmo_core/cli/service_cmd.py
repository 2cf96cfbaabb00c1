"""`elmo serve`, `elmo api`, `elmo worker`, `elmo keys create`: the job service from the CLI.

Service modules are imported inside the commands, so `elmo` works without the service extra.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

HostOpt = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option(help="TCP port of the API.")]


def _settings():  # type: ignore[no-untyped-def]
    from service.core.config import get_settings

    return get_settings()


def _run_api(host: str, port: int, log_level: str) -> None:
    import uvicorn

    from service.main import create_app

    uvicorn.run(create_app(_settings()), host=host, port=port, log_level=log_level)


def api(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the REST API alone (workers run elsewhere; set ELMO_DATABASE_URL, ELMO_BROKER_URL)."""
    _run_api(host, port, log_level)


def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume: train, predict.")
    ] = "train,predict",
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once (1 per GPU).")] = 1,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Start a worker alone: takes training and/or inference jobs from the broker."""
    from worker.main import run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()]
    run_worker(_settings(), names, concurrency=concurrency, hostname=hostname, loglevel=loglevel)


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the whole stack locally: the API plus a training and an inference worker.

    With no configuration it uses an embedded filesystem broker, a SQLite database and an
    artifacts directory under ELMO_HOME (default ./.elmo): no Redis or PostgreSQL needed.
    """
    from service.core.migrate import upgrade_database

    settings = _settings()
    settings.ensure_dirs()
    upgrade_database(settings.effective_database_url)
    env = {**os.environ, "ELMO_RUN_MIGRATIONS": "0"}
    launcher = "from elmo_core.cli.main import main; main()"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", launcher, "worker", "--queues", queue, "--loglevel", "WARNING"],
            env=env,
            start_new_session=True,
        )
        for queue in ("train", "predict")
    ]
    typer.echo(
        f"elmo: API on http://{host}:{port} (docs /docs), home {settings.home.resolve()}; "
        "create a key with `elmo keys create --name NAME` (same ELMO_HOME)",
        err=True,
    )
    # uvicorn re-raises SIGTERM after its shutdown: turn it into SystemExit so `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _run_api(host, port, log_level)
    finally:
        _stop_workers(workers, grace_s=15.0)


def _stop_workers(workers: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each worker's main process (Celery's warm shutdown, which stops its own pool
    children), then SIGKILL each worker's process group if it is still there after grace_s.

    Only the main process gets the SIGTERM: signalling the whole group made the pool children
    die under the main process, which logged "Process 'ForkPoolWorker-1' ... exited with
    'signal 15 (SIGTERM)'" errors at every clean stop. A job cut short stays `running` until the
    reconciler of the next worker re-queues it (after ELMO_JOB_LEASE_SECONDS); it then resumes
    from its last checkpoint.
    """
    for proc in workers:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in workers:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Owner name; keys with one name share resources.")],
) -> None:
    """Create an API key and print it once (stdout); only its hash is stored."""
    from service.core.db import session_scope
    from service.core.migrate import upgrade_database
    from service.core.security import create_api_key

    settings = _settings()
    settings.ensure_dirs()
    upgrade_database(settings.effective_database_url)
    with session_scope(settings.effective_database_url) as session:
        row, token = create_api_key(session, name.strip())
    typer.echo(f"created key {row.id} for owner {row.owner!r}; it is shown only once:", err=True)
    typer.echo(token)
