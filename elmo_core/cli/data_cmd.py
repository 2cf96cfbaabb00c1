"""`elmo data ...`: inspect a dataset (validate it and print its statistics), or generate a
synthetic one at the scale of a public dataset."""

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
from elmo_core.data.synth import SHAPES, resolve_shape, synthesize
from elmo_core.data.vocabulary import EMPTY_ROWS_POLICIES, FORMATS
from elmo_core.errors import ConfigError, DatasetFormatError

app = typer.Typer(help="Validate, describe and synthesize datasets.", no_args_is_help=True)


FormatChoice = Enum(  # type: ignore[misc]
    "FormatChoice", {name: name for name in FORMATS}, type=str
)
"""The dataset formats as the choices of `--format`."""
EmptyRowsChoice = Enum(  # type: ignore[misc]
    "EmptyRowsChoice", {name: name for name in EMPTY_ROWS_POLICIES}, type=str
)
"""The empty-rows policies as the choices of `--empty-rows`."""
ShapeChoice = Enum(  # type: ignore[misc]
    "ShapeChoice", {name: name for name in [*SHAPES, "custom"]}, type=str
)
"""The synthetic dataset shapes as the choices of `--shape`."""


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


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Output directory (created; must be empty or absent)."),
    shape: ShapeChoice = typer.Option(..., "--shape", help="Public dataset to mimic, or custom."),
    scale: float = typer.Option(1.0, "--scale", help="Multiplies points and labels."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same files."),
    points: int | None = typer.Option(None, "--points", help="Train points (custom)."),
    test_points: int | None = typer.Option(None, "--test-points", help="Test points (custom)."),
    labels: int | None = typer.Option(None, "--labels", help="Labels (custom)."),
    labels_per_point: float | None = typer.Option(
        None, "--labels-per-point", help="Mean labels per point (custom)."
    ),
    words_per_text: float | None = typer.Option(
        None, "--words-per-text", help="Mean words per text (custom: 30)."
    ),
    label_words: float | None = typer.Option(
        None, "--label-words", help="Mean words per label text (custom: 4)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes generating chunks (default: every core)."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty OUT."),
) -> None:
    """Write a synthetic dataset in the LF raw-text layout, for throughput and memory sizing.

    The named shapes carry the public datasets' sizes; --points and the other numbers override
    them (custom needs --points, --test-points, --labels and --labels-per-point). The texts are
    learnable but the data is synthetic: never quote accuracy measured on it.
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        sizes = resolve_shape(
            shape.value,
            scale,
            points=points,
            test_points=test_points,
            labels=labels,
            labels_per_point=labels_per_point,
            words_per_text=words_per_text,
            label_words=label_words,
        )
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        summary = synthesize(out, sizes, seed, workers=workers, overwrite=force)
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    typer.echo(
        f"wrote {out}: {sizes.train_points:,} train + {sizes.test_points:,} test points, "
        f"{sizes.labels:,} labels, {summary.avg_labels_per_point:.2f} labels/point, "
        f"{summary.bytes_written / 2**20:,.1f} MiB in {len(summary.files)} files, "
        f"{summary.seconds:.1f} s"
    )


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
