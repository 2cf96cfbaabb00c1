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
from typing import TYPE_CHECKING, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from elmo_core.training.callbacks import TrainerCallbacks, TrainResult

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
    """Progress bar per run, a line per epoch's metrics; Ctrl-C asks for a cooperative stop.

    The recipe computes the loss only every `log_every` steps, so the bar shows the latest loss
    with the step it was measured at (`loss 29.26 @ step 40`): a value that stays put between
    two measurements is visibly an old one, not a stuck run.
    """

    def __init__(self, progress: Progress, eval_split: str = "validation") -> None:
        self.progress = progress
        self.eval_split = eval_split
        self.task: TaskID | None = None
        self.stop_requested = False
        self.loss: float | None = None
        self.loss_step = 0

    def on_phase(self, phase: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, phase=phase)

    def on_progress(self, p) -> None:
        if p.loss is not None:
            self.loss, self.loss_step = p.loss, p.step
        if self.task is None:
            self.task = self.progress.add_task(
                "train", total=p.total_steps, phase="training", info=""
            )
        loss = "" if self.loss is None else f" loss {self.loss:.3f} @ step {self.loss_step}"
        self.progress.update(
            self.task,
            completed=p.step,
            info=f"epoch {p.epoch}/{p.epochs} {p.throughput:.0f} pts/s{loss}",
        )

    def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = " ".join(
            f"{k} {v:.2f}" for k, v in metrics.items() if k.split("@")[0] in ("P", "nDCG", "PSP")
        )
        self.progress.console.print(f"epoch {epoch}, {self.eval_split}: {shown}", highlight=False)

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
    members: int | None = typer.Option(
        None, "--members", help="Sparse encoders + heads trained side by side, served as one."
    ),
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
        "members": members,
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
        callbacks = _RichCallbacks(progress, config.eval.split)
        previous = signal.signal(
            signal.SIGINT, lambda *_: setattr(callbacks, "stop_requested", True)
        )
        try:
            with progress:
                result = run_training(
                    config, dataset, out_dir, cast("TrainerCallbacks", callbacks), resume=resume
                )
        finally:
            signal.signal(signal.SIGINT, previous)
    except TrainingCancelled as exc:
        err.print(f"stopped at step {exc.step}; continue with --resume --out {out_dir}")
        raise typer.Exit(130) from None
    except (ElmoError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"model: {result.model_dir} ({_describe(result)})", highlight=False, soft_wrap=True)


def _describe(result: TrainResult) -> str:
    """`epoch N, test P@1 x P@5 y PSP@5 z` of the saved model (the split named), and the epoch
    early stopping ended the run after, if it did."""
    text = f"epoch {result.epoch}"
    stopped = ""
    if result.stopped_early is not None:
        stopped = f"; stopped early after epoch {result.stopped_early['epoch']}"
    if result.metrics is None:
        return f"{text}; no test split to report{stopped}"
    shown = ", ".join(
        f"{key} {result.metrics[key]:.2f}"
        for key in ("P@1", "P@5", "PSP@5")
        if key in result.metrics
    )
    return f"{text}, test {shown}{stopped}"


def eval_model(
    model: Path = typer.Option(..., "--model", help="Model directory (a run's OUT/model)."),
    data: Path = typer.Option(..., "--data", help="Dataset with a test split."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a model on a dataset's test split (P/nDCG/PSP/R@k, filter pairs removed).

    The same evaluation as the end of `elmo train`: for the model a run saved, the same numbers.
    """
    import torch

    from elmo_core.data import load_dataset
    from elmo_core.data.splits import select_splits
    from elmo_core.model import load_model
    from elmo_core.model.evaluation import evaluate_split, split_propensities

    try:
        loaded = load_model(model)
        config = loaded.config
        dataset = load_dataset(data, format=config.data.format, empty_rows="keep")
        if dataset.num_labels != loaded.head.num_labels:
            raise _fail(
                f"{data} has {dataset.num_labels} labels, the model {loaded.head.num_labels}"
            )
        splits = select_splits(config, dataset)  # the run's own train points: its propensities
        if splits.test is None:
            raise _fail(f"{data} has no test split")
        metrics = evaluate_split(
            loaded.encoder,
            loaded.head,
            loaded.fusion,
            splits.test,
            config=config.eval,
            propensities=split_propensities(splits.train.labels, config.eval),
            device=torch.device("cpu"),
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
    exclude_label: list[str] = typer.Option(
        [],
        "--exclude-label",
        help="A label never to return (repeatable): its id, its text, or its text up to the "
        "first ':' (e.g. a package name), such as the item the text itself describes.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Predict the top-k labels (ids, texts, scores in [0, 1]) of one or more texts.

    When a text describes an item that is itself a label (on debian-deps, a package that other
    packages depend on), that label's text matches best and ranks first: `--exclude-label` drops
    it (and any other label given) from every text's ranking.
    """
    from elmo_core.inference import Predictor

    try:
        predictor = Predictor.load(model)
        excluded = _resolve_labels(predictor.label_texts, predictor.num_labels, exclude_label)
        predictions = predictor.predict(
            list(text), k=k, threshold=threshold, exclude=[excluded] * len(text)
        )
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


def _resolve_labels(label_texts: list[str] | None, num_labels: int, names: list[str]) -> list[int]:
    """The label ids that `--exclude-label` values name: an integer is an id; otherwise a value
    names every label whose text equals it or starts with it followed by ':'. ValueError for a
    value that names no label (a typo must not silently exclude nothing)."""
    ids: list[int] = []
    for name in names:
        if name.strip().isdigit():
            if int(name) >= num_labels:
                raise ValueError(
                    f"--exclude-label {name}: no such label id (the model has {num_labels} labels)"
                )
            ids.append(int(name))
            continue
        matches = [
            i
            for i, label in enumerate(label_texts or [])
            if label == name or label.startswith(f"{name}:")
        ]
        if not matches:
            where = "the model has no label texts" if label_texts is None else "no label matches"
            raise ValueError(
                f"--exclude-label {name!r}: {where} (give a label id, 0-{num_labels - 1})"
            )
        ids.extend(matches)
    return ids
