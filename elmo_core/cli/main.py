"""Entry point of the `elmo` command: one typer app, each verb group in its own module.

The library's own verbs (data, bench, train, eval, predict) are added here. Other packages add
theirs through the `elmo.commands` entry-point group: each entry is a `register(app)` function
(the service adds `serve`, `api`, `keys`; the worker adds `worker`), so the library never
imports them.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

import typer

import elmo_core.cli.train_cmd as train_cmd
from elmo_core.cli import bench_cmd, data_cmd

PLUGIN_GROUP = "elmo.commands"
log = logging.getLogger(__name__)

app = typer.Typer(
    name="elmo",
    help="Train and serve extreme multi-label classifiers with a low-precision output layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(bench_cmd.app, name="bench")
app.command("train")(train_cmd.train)
app.command("eval")(train_cmd.eval_model)
app.command("predict")(train_cmd.predict)


def load_plugins(target: typer.Typer, group: str = PLUGIN_GROUP) -> list[str]:
    """Call `register(target)` of each entry point in `group`; return the names registered.

    A plugin whose import fails because a third-party package is missing (e.g. the `service`
    extra is not installed) is skipped; any other error, including a missing module of the
    plugin's own package, propagates.
    """
    loaded: list[str] = []
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            register = entry.load()
        except ModuleNotFoundError as exc:
            if not _missing_dependency(entry, exc):
                raise
            log.debug("elmo: plugin %r skipped (%s is not installed)", entry.name, exc.name)
            continue
        register(target)
        loaded.append(entry.name)
    return loaded


def _missing_dependency(entry: EntryPoint, exc: ModuleNotFoundError) -> bool:
    """True when the module that is missing is not part of the plugin's own package."""
    own = entry.module.split(".")[0]
    return exc.name is not None and exc.name.split(".")[0] != own


load_plugins(app)


def main() -> None:
    """Run the `elmo` command line."""
    app()


if __name__ == "__main__":
    main()
