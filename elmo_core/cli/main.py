"""Entry point of the `elmo` command: one typer app, each verb group in its own module."""

from __future__ import annotations

import typer

from elmo_core.cli import data_cmd

app = typer.Typer(
    name="elmo",
    help="Train and serve extreme multi-label classifiers with a low-precision output layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")


def main() -> None:
    """Run the `elmo` command line."""
    app()
