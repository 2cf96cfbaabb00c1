"""Entry point of the `elmo` command: one typer app, each verb group in its own module."""

from __future__ import annotations

import typer

import elmo_core.cli.service_cmd as service_cmd
import elmo_core.cli.train_cmd as train_cmd
from elmo_core.cli import bench_cmd, data_cmd

app = typer.Typer(
    name="elmo",
    help="Train and serve extreme multi-label classifiers with a low-precision output layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(bench_cmd.app, name="bench")
app.command("serve")(service_cmd.serve)
app.command("api")(service_cmd.api)
app.command("worker")(service_cmd.worker)
app.add_typer(service_cmd.keys_app, name="keys")
app.command("train")(train_cmd.train)
app.command("eval")(train_cmd.eval_model)
app.command("predict")(train_cmd.predict)


def main() -> None:
    """Run the `elmo` command line."""
    app()


if __name__ == "__main__":
    main()
