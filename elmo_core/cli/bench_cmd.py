"""`elmo bench ...`: micro-benchmarks of the library's parts (the head's training step)."""

from __future__ import annotations

import json
from enum import Enum

import torch
import typer
from rich.console import Console
from rich.table import Table

from elmo_core.bench import bench_head
from elmo_core.errors import ElmoError
from elmo_core.precision import PRECISIONS

app = typer.Typer(help="Measure the speed and memory of the library's parts.", no_args_is_help=True)


PrecisionChoice = Enum(  # type: ignore[misc]
    "PrecisionChoice", {name: name for name in PRECISIONS}, type=str
)
"""The head's storage types as the choices of `--precision`."""


@app.command()
def head(
    labels: int = typer.Option(..., "--labels", min=1, help="Number of labels L."),
    dim: int = typer.Option(768, "--dim", min=1, help="Embedding dimension d."),
    batch: int = typer.Option(128, "--batch", min=1, help="Batch size B (5 positives per row)."),
    precision: PrecisionChoice = typer.Option(
        PrecisionChoice["fp8"], "--precision", help="Weight storage."
    ),
    chunks: int | None = typer.Option(
        None, "--chunks", min=1, help="Number of label chunks (default: automatic chunk size)."
    ),
    steps: int = typer.Option(10, "--steps", min=1, help="Timed steps (after 2 warm-up steps)."),
    device: str | None = typer.Option(
        None, "--device", help="Device to run on (default: cuda if available, else cpu)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time full head training steps on a fixed random batch and report their memory."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    previous = torch.get_default_device()
    torch.set_default_device(dev)
    try:
        result = bench_head(labels, dim, batch, precision.value, chunks, steps)
    except (ElmoError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        torch.set_default_device(previous)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("key", "value", title="elmo bench head")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
