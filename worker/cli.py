"""`elmo worker`: start a worker from the `elmo` command.

Registered through the `elmo.commands` entry-point group (pyproject.toml): the library's CLI
loads `register` without importing the worker. Celery is imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the worker's command to the `elmo` typer app (the `elmo.commands` entry point)."""
    app.command("worker")(worker)


def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume: train, predict.")
    ] = "train,predict",
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once (1 per GPU).")] = 1,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    quiet: Annotated[
        bool, typer.Option(help="No start-up banner and no warning about running as root.")
    ] = False,
) -> None:
    """Start a worker alone: takes training and/or inference jobs from the broker."""
    from service.core.config import get_settings
    from worker.main import run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()]
    run_worker(
        get_settings(),
        names,
        concurrency=concurrency,
        hostname=hostname,
        loglevel=loglevel,
        quiet=quiet,
    )
