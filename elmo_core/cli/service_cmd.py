"""`elmo serve`, `elmo api`, `elmo worker`, `elmo keys create`: the job service from the CLI.

Service modules are imported inside the commands, so `elmo` works without the service extra.
"""

from __future__ import annotations

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
        )
        for queue in ("train", "predict")
    ]
    typer.echo(
        f"elmo: API on http://{host}:{port} (docs /docs), home {settings.home.resolve()}",
        err=True,
    )
    try:
        _run_api(host, port, log_level)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


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
