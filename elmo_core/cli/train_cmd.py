"""`elmo train`, `elmo eval`, `elmo predict`: drive `elmo_core.training` and `elmo_core.inference`.

Bad inputs (missing files, malformed data or config, unknown options) print one clear line on
stderr and exit non-zero, without a traceback. Ctrl-C during training asks the recipe to stop: it
writes a checkpoint, and `--resume` continues the run.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from elmo_core.errors import ElmoError

err = Console(stderr=True)
out = Console()

ENCODER_HELP = "tfidf | features | minilm | hf:PATH"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _build_config(
    config_file: Path | None,
    base: dict | None,
    overrides: dict,
):
    from elmo_core.training import load_config, parse_config

    if config_file is not None:
        config = load_config(config_file)
    else:
        config = parse_config(base or {}, source="config")
    raw = config.model_dump(mode="json")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_config(raw, source="command-line options")


class _RichCallbacks:
    """Progress bar per run, a line per epoch's metrics; Ctrl-C asks for a cooperative stop."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None
        self.stop_requested = False
        self.loss: float | None = None

    def on_phase(self, phase: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, phase=phase)

    def on_progress(self, p) -> None:
        if p.loss is not None:
            self.loss = p.loss
        if self.task is None:
            self.task = self.progress.add_task(
                "train", total=p.total_steps, phase="training", info=""
            )
        loss = "" if self.loss is None else f" loss {self.loss:.3f}"
        self.progress.update(
            self.task,
            completed=p.step,
            info=f"epoch {p.epoch}/{p.epochs} {p.throughput:.0f} pts/s{loss}",
        )

    def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = " ".join(
            f"{k} {v:.2f}" for k, v in metrics.items() if k.split("@")[0] in ("P", "nDCG", "PSP")
        )
        self.progress.console.print(f"epoch {epoch}: {shown}", highlight=False)

    def on_telemetry(self, record: dict) -> None:
        return None

    def on_log(self, message: str) -> None:
        self.progress.console.print(message, highlight=False)

    def should_stop(self) -> bool:
        return self.stop_requested


def train(
    data: Path | None = typer.Option(None, "--data", help="Dataset directory or file."),
    encoder: str | None = typer.Option(None, "--encoder", help=ENCODER_HELP),
    precision: str | None = typer.Option(None, "--precision", help="fp8 | bf16 | fp32"),
    epochs: int | None = typer.Option(None, "--epochs", help="Number of epochs."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Points per step."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda"),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory (model in OUT/model)."),
    config_file: Path | None = typer.Option(None, "--config", help="TrainConfig JSON file."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the config as JSON (a skeleton to edit) and exit."
    ),
) -> None:
    """Train a model: encoder + low-precision head; checkpoints and the model go to --out."""
    from elmo_core.data import load_dataset
    from elmo_core.training import TrainingCancelled
    from elmo_core.training import train as run_training
    from elmo_core.training.recipe import RUN_CONFIG

    overrides = {
        "encoder.name": encoder,
        "precision": precision,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "device": device,
    }
    try:
        base = None
        if resume and config_file is None and out_dir is not None:
            saved = out_dir / RUN_CONFIG
            if not saved.exists():
                raise _fail(f"--resume: {saved} not found (no run to resume in {out_dir})")
            base = json.loads(saved.read_text(encoding="utf-8"))
        config = _build_config(config_file, base, overrides)
        if print_config:
            out.print_json(config.to_json())
            return
        if data is None:
            raise _fail("--data is required")
        if out_dir is None:
            raise _fail("--out is required")
        dataset = load_dataset(data, format=config.data.format, empty_rows=config.data.empty_rows)
        progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        callbacks = _RichCallbacks(progress)
        previous = signal.signal(
            signal.SIGINT, lambda *_: setattr(callbacks, "stop_requested", True)
        )
        try:
            with progress:
                result = run_training(config, dataset, out_dir, callbacks, resume=resume)
        finally:
            signal.signal(signal.SIGINT, previous)
    except TrainingCancelled as exc:
        err.print(f"stopped at step {exc.step}; continue with --resume --out {out_dir}")
        raise typer.Exit(130) from None
    except (ElmoError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    best = result.best_metrics or result.last_metrics
    summary = "" if best is None else f" (epoch {result.best_epoch}: P@1 {best['P@1']:.2f})"
    out.print(f"model: {result.model_dir}{summary}", highlight=False)


def eval_model(
    model: Path = typer.Option(..., "--model", help="Model directory (a run's OUT/model)."),
    data: Path = typer.Option(..., "--data", help="Dataset with a test split."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a model on a dataset's test split (P/nDCG/PSP/R@k, filter pairs removed)."""
    from elmo_core.data import load_dataset
    from elmo_core.inference import Predictor
    from elmo_core.metrics import evaluate, jain_propensities
    from elmo_core.training.recipe import max_filters_per_row, select_splits

    try:
        predictor = Predictor.load(model)
        config = predictor.config
        dataset = load_dataset(data, format=config.data.format, empty_rows="keep")
        if dataset.test is None:
            raise _fail(f"{data} has no test split")
        if dataset.num_labels != predictor.num_labels:
            raise _fail(f"{data} has {dataset.num_labels} labels, the model {predictor.num_labels}")
        test = dataset.test
        extra = max_filters_per_row(test.filter_pairs, test.num_points)
        _, ids = predictor.rank(test.texts, test.features, max(config.eval.ks) + extra)
        run_train, _ = select_splits(config, dataset)  # the run's own train points
        propensities = jain_propensities(
            run_train.labels, config.eval.propensity_a, config.eval.propensity_b
        )
        metrics = evaluate(
            ids, test.labels, config.eval.ks, propensities, filter_pairs=test.filter_pairs
        )
    except (ElmoError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(metrics))
        return
    table = Table("metric", "value")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.2f}")
    out.print(table)


def predict(
    model: Path = typer.Option(..., "--model", help="Model directory."),
    text: list[str] = typer.Option(..., "--text", help="Input text (repeat for several)."),
    k: int = typer.Option(10, "-k", "--k", min=1, help="Labels per text."),
    threshold: float | None = typer.Option(None, "--threshold", help="Minimum score (0-1)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Predict the top-k labels (ids, texts, scores in [0, 1]) of one or more texts."""
    from elmo_core.inference import Predictor

    try:
        predictions = Predictor.load(model).predict(list(text), k=k, threshold=threshold)
    except (ElmoError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        payload = [{"text": t, "labels": p} for t, p in zip(text, predictions, strict=True)]
        out.print_json(json.dumps(payload))
        return
    for t, labels in zip(text, predictions, strict=True):
        table = Table("id", "score", "label", title=t[:80])
        for item in labels:
            table.add_row(str(item["label_id"]), f"{item['score']:.4f}", item["label"] or "")
        out.print(table)
    sys.stdout.flush()
