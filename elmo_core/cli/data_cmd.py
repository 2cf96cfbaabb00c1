"""`elmo data ...`: inspect a dataset (validate it and print its statistics)."""

from __future__ import annotations

import json
import warnings
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from elmo_core.data import dataset_stats, load_dataset
from elmo_core.data.vocabulary import EMPTY_ROWS_POLICIES, FORMATS
from elmo_core.errors import DatasetFormatError

app = typer.Typer(help="Validate and describe datasets.", no_args_is_help=True)


FormatChoice = Enum(  # type: ignore[misc]
    "FormatChoice", {name: name for name in FORMATS}, type=str
)
"""The dataset formats as the choices of `--format`."""
EmptyRowsChoice = Enum(  # type: ignore[misc]
    "EmptyRowsChoice", {name: name for name in EMPTY_ROWS_POLICIES}, type=str
)
"""The empty-rows policies as the choices of `--empty-rows`."""


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="Dataset directory or file."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    format: FormatChoice = typer.Option(FormatChoice["auto"], "--format", help="Dataset format."),
    empty_rows: EmptyRowsChoice = typer.Option(
        EmptyRowsChoice["warn"],
        "--empty-rows",
        help="Points with no labels: warn, drop, error or keep.",
    ),
) -> None:
    """Load and validate a dataset, then print its statistics.

    A malformed file makes the command exit with status 1 and `file:line: reason` on stderr.
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = load_dataset(path, format=format.value, empty_rows=empty_rows.value)
        except DatasetFormatError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None
    for warning in caught:
        err.print(f"warning: {warning.message}", markup=False)
    stats = dataset_stats(ds)
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
    else:
        out = Console(highlight=False)
        out.print(_points_table(stats))
        out.print(_labels_table(stats["labels"]))


_POINT_KEYS = (
    "points",
    "positives",
    "avg_labels_per_point",
    "max_labels_per_point",
    "points_without_labels",
    "filter_pairs",
    "positives_unseen_in_train",
    "positives_unseen_in_train_pct",
    "points_all_labels_unseen",
    "avg_text_chars",
    "avg_text_words",
    "max_text_chars",
    "num_features",
    "avg_features_per_point",
)


def _points_table(stats: dict[str, Any]) -> Table:
    table = Table(title=f"{stats['name']} ({stats['format']}): points")
    table.add_column("statistic")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    train, test = stats["train"], stats["test"] or {}
    for key in _POINT_KEYS:
        if key in train or key in test:
            table.add_row(key.replace("_", " "), _fmt(train.get(key)), _fmt(test.get(key)))
    return table


def _labels_table(labels: dict[str, Any]) -> Table:
    table = Table(title="labels")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in labels.items():
        if key == "train_frequency_quantiles":
            for subset, quantiles in value.items():
                title = f"train points per label, {subset.replace('_', ' ')}"
                table.add_row(
                    f"{title} ({'/'.join(quantiles)})", " / ".join(map(_fmt, quantiles.values()))
                )
        else:
            table.add_row(key.replace("_", " "), _fmt(value))
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
