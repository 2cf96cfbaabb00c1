"""The training recipe: one run of encoder + low-precision head, with hooks (torchtune style).

    setup      seeds, splits, encoder (pure BF16 or fp32), optimizer, head; or a checkpoint's state
    train      epochs over shuffled batches; per step: encoder forward -> head.step (updates the
               head, returns dE) -> e.backward(dE) -> encoder optimizer step; evaluation per epoch
    save       checkpoints (every N steps, each epoch, on cancel), best and last model artifacts

The data order of epoch e is a permutation drawn from `default_rng([seed, e])`, so a resumed run
replays the same batches from its saved (epoch, step); the torch RNG (dropout) and the head's step
counter (stochastic rounding) are restored from the checkpoint, which makes an interrupted and
resumed CPU run end with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from optimi import AdamW

from elmo_core.data import XMCDataset, XMCSplit
from elmo_core.encoders import build_encoder, cast_encoder, enable_float8
from elmo_core.errors import ConfigError
from elmo_core.fusion import FusedScorer, fuse_topk
from elmo_core.head import XMCHead
from elmo_core.inference.topk import predict_topk
from elmo_core.metrics import evaluate, jain_propensities
from elmo_core.training.callbacks import (
    Progress,
    TrainerCallbacks,
    TrainingCancelled,
    TrainingDiverged,
    TrainResult,
)
from elmo_core.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_optimizer_state,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    split_optimizer_state,
    write_json_atomic,
)
from elmo_core.training.config import TrainConfig
from elmo_core.training.schedule import lr_factor
from elmo_core.training.telemetry import MemoryTelemetry, static_record

RUN_CONFIG = "run_config.json"


def train(
    config: TrainConfig,
    dataset: XMCDataset,
    out_dir: str | Path,
    callbacks: TrainerCallbacks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a model on `dataset` as `config` says; artifacts go to `out_dir` (see module doc).

    `resume=True` continues from `out_dir/checkpoints` (the config must be the same). Raises
    `TrainingCancelled` when `callbacks.should_stop()` turns True (a checkpoint is written first).
    """
    recipe = Recipe(config, dataset, Path(out_dir), callbacks or TrainerCallbacks())
    recipe.setup(resume)
    return recipe.train()


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def select_splits(config: TrainConfig, dataset: XMCDataset) -> tuple[XMCSplit, XMCSplit | None]:
    """The (train, evaluation) splits of a run: prefixes, validation slice, or the test split."""
    train = _head(dataset.train, config.data.max_train_points)
    fraction = config.data.validation_fraction
    validation = None
    if fraction > 0:
        held = round(train.num_points * fraction)
        if held < 1 or held >= train.num_points:
            raise ConfigError(
                f"validation_fraction={fraction} leaves no train or no validation points"
            )
        keep = train.num_points - held
        validation = _slice(train, keep, train.num_points)
        train = _slice(train, 0, keep)
    if config.eval.split == "validation":
        if validation is None:
            raise ConfigError("eval.split is 'validation' but data.validation_fraction is 0")
        return train, validation
    test = dataset.test
    return train, (None if test is None else _head(test, config.data.max_test_points))


def _head(split: XMCSplit, limit: int | None) -> XMCSplit:
    if limit is None or limit >= split.num_points:
        return split
    return _slice(split, 0, limit)


def _slice(split: XMCSplit, start: int, stop: int) -> XMCSplit:
    pairs = split.filter_pairs
    inside = (pairs[:, 0] >= start) & (pairs[:, 0] < stop)
    shifted = pairs[inside].copy()
    shifted[:, 0] -= start
    return XMCSplit(
        labels=split.labels[start:stop],
        texts=None if split.texts is None else split.texts[start:stop],
        features=None if split.features is None else split.features[start:stop],
        filter_pairs=shifted,
    )


def epoch_order(seed: int, epoch: int, num_points: int) -> np.ndarray:
    """The shuffled order of the points in `epoch` (a pure function of seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_points)


def batch_pairs(labels: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive (batch row, label id) pairs of the points `rows`."""
    block = labels[rows]
    counts = np.diff(block.indptr)
    batch_rows = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    return torch.from_numpy(batch_rows), torch.from_numpy(block.indices.astype(np.int64))


def max_filters_per_row(pairs: np.ndarray, num_rows: int) -> int:
    """The most filter pairs any one row has (the extra predictions to fetch before filtering)."""
    if pairs.shape[0] == 0:
        return 0
    return int(np.bincount(pairs[:, 0], minlength=num_rows).max())


@dataclass
class _Position:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


class Recipe:
    """One training run; `setup` then `train`."""

    def __init__(
        self, config: TrainConfig, dataset: XMCDataset, out_dir: Path, callbacks: TrainerCallbacks
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.out_dir = out_dir
        self.cb = callbacks
        self.ckpt_dir = out_dir / "checkpoints"
        self.best_dir = out_dir / "model-best"
        self.pos = _Position()
        self.history: list[dict] = []
        self.telemetry: dict = {"static": None, "epochs": []}
        self.best: tuple[int, dict[str, float]] | None = None

    # -- setup ---------------------------------------------------------------------------------

    def setup(self, resume: bool) -> None:
        """Build everything; with `resume`, load the state of the latest checkpoint."""
        cfg = self.config
        self.cb.on_phase("loading")
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        _seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.train_split, self.eval_split = select_splits(cfg, self.dataset)
        if cfg.eval.every_epoch and self.eval_split is None:
            self.cb.on_log("no test split: evaluation is skipped")
        train = self.train_split
        self.fit_split = self._with_label_points(train)
        self.encoder = build_encoder(
            cfg.encoder,
            train.texts,
            None if train.features is None else train.features.shape[1],
        )
        self.cb.on_log(f"encoder {cfg.encoder.name}: {self.encoder.dim} dims")
        self.train_inputs = self.encoder.featurize(self.fit_split.texts, self.fit_split.features)
        self.eval_inputs = (
            None
            if self.eval_split is None
            else self.encoder.featurize(self.eval_split.texts, self.eval_split.features)
        )
        self.fusion, self.eval_priors = self._build_fusion(train)
        self.encoder = cast_encoder(self.encoder, cfg.precision).to(self.device)
        if self.device.type == "cpu" and not cfg.encoder.is_sparse and cfg.precision != "fp32":
            self.cb.on_log(
                "a pure-BF16 transformer trains slowly on CPUs without native BF16 matmuls "
                "(15x slower than fp32 on a 2-core CI machine): prefer a GPU or --precision fp32"
            )
        if cfg.encoder.float8 and not cfg.encoder.is_sparse:
            if enable_float8(self.encoder):
                self.cb.on_log("transformer linear layers use torchao float8 training")
            else:
                self.cb.on_log("float8 requested but unavailable (needs torchao and an FP8 GPU)")
        self.optimizer = AdamW(
            self.encoder.parameters(),
            lr=cfg.encoder_lr,
            weight_decay=cfg.schedule.encoder_weight_decay,
            kahan_sum=cfg.precision != "fp32",
        )
        label_counts = np.bincount(train.labels.indices, minlength=self.dataset.num_labels)
        self.head = XMCHead(
            self.dataset.num_labels,
            self.encoder.dim,
            precision=cfg.precision,
            chunk_size=cfg.head.chunk_size,
            head_ratio=cfg.head.head_ratio,
            kahan_dtype=cfg.head.kahan_dtype,
            weight_decay=cfg.head.weight_decay,
            init_std=cfg.head.init_std,
            seed=cfg.seed,
            device=self.device,
            label_counts=torch.from_numpy(label_counts),
        )
        self.propensities = jain_propensities(
            train.labels, cfg.eval.propensity_a, cfg.eval.propensity_b
        )
        self.steps_per_epoch = math.ceil(self.fit_split.num_points / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.memory = MemoryTelemetry(self.device)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._load_checkpoint()
        else:
            self._init_head_from_label_texts()
            for stale in (self.ckpt_dir, self.best_dir):
                if stale.exists():
                    shutil.rmtree(stale)
            write_json_atomic(self.out_dir / RUN_CONFIG, cfg.model_dump(mode="json"))

    def _init_head_from_label_texts(self) -> None:
        """Row l <- factor x encoder(label text l) (bias column 0): a text-similarity prior."""
        factor = self.config.head.init_from_label_texts
        texts = self.dataset.label_texts
        if not factor:
            return
        if texts is None:
            self.cb.on_log("head.init_from_label_texts is set but the dataset has no label texts")
            return
        inputs = self.encoder.featurize(texts, None)
        weights = torch.zeros(len(texts), self.encoder.dim, dtype=torch.float32)
        batch = self.config.eval.batch_size
        self.encoder.eval()
        with torch.no_grad():
            for start in range(0, len(texts), batch):
                rows = np.arange(start, min(start + batch, len(texts)))
                out = self.encoder(self.encoder.make_batch(inputs, rows, self.device)).float()
                weights[rows] = out.cpu() * factor
        self.encoder.train()
        if getattr(self.encoder, "bias_feature", 0.0):
            weights[:, -1] = 0.0
        self.head.load_weights(weights.to(self.device))

    def _build_fusion(self, train: XMCSplit) -> tuple[FusedScorer | None, sp.csr_matrix | None]:
        """The text priors (fitted on the train split) and those of the evaluation split."""
        cfg = self.config.fusion
        if not cfg.active:
            return None, None
        if train.texts is None:
            self.cb.on_log("fusion needs raw texts; this dataset has none: the head ranks alone")
            return None, None
        # A `tfidf` encoder's inputs are the neighbour prior's word rows: reuse, do not redo them
        # (the first rows of train_inputs are train's, label-text points follow them).
        featurizer = getattr(self.encoder, "featurizer", None)
        shared = featurizer is not None
        fusion = FusedScorer.fit(
            train.texts,
            train.labels,
            self.dataset.label_texts,
            label_text_weight=cfg.label_text_weight,
            neighbour_weight=cfg.neighbour_weight,
            neighbours=cfg.neighbours,
            candidates=cfg.candidates,
            char_ngrams=cfg.char_ngrams,
            min_df=cfg.min_df,
            word_featurizer=featurizer,
            word_rows=self.train_inputs[: train.num_points] if shared else None,
        )
        self.cb.on_log(
            f"fusion: label-text weight {fusion.label_text_weight}, "
            f"neighbour weight {fusion.neighbour_weight}"
        )
        split = self.eval_split
        if split is None or split.texts is None:
            return fusion, None
        word_rows = self.eval_inputs if shared else None
        return fusion, fusion.priors(split.texts, self.dataset.num_labels, word_rows)

    def _with_label_points(self, train: XMCSplit) -> XMCSplit:
        """The split the encoder and head are fitted on: train, plus the label texts as points
        (label l's text labelled l) when `data.label_texts_as_points` is set."""
        texts = self.dataset.label_texts
        if not self.config.data.label_texts_as_points:
            return train
        if texts is None or train.texts is None:
            raise ConfigError("data.label_texts_as_points needs raw texts and label texts")
        num = len(texts)
        identity = sp.identity(num, dtype=np.float32, format="csr")
        return XMCSplit(
            labels=sp.vstack([train.labels, identity], format="csr"),
            texts=list(train.texts) + list(texts),
            features=None,
            filter_pairs=train.filter_pairs,
        )

    # -- the loop ------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        """Run the remaining epochs; return where the models are and the metrics."""
        cfg = self.config
        self.cb.on_phase("training")
        while self.pos.epoch < cfg.epochs:
            self._train_epoch()
            self._end_epoch()
            self.cb.on_phase("training")
        return self._finish()

    def _train_epoch(self) -> None:
        cfg = self.config
        epoch = self.pos.epoch
        order = epoch_order(cfg.seed, epoch, self.fit_split.num_points)
        self.memory.start_epoch()
        self.encoder.train()
        started, points = time.time(), 0
        while self.pos.step_in_epoch < self.steps_per_epoch:
            b = self.pos.step_in_epoch
            rows = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            loss = self._step(rows)
            self.pos.step_in_epoch += 1
            self.pos.global_step += 1
            points += len(rows)
            elapsed = max(time.time() - started, 1e-9)
            remaining = self.total_steps - self.pos.global_step
            self.cb.on_progress(
                Progress(
                    epoch=epoch + 1,
                    epochs=cfg.epochs,
                    step=self.pos.global_step,
                    total_steps=self.total_steps,
                    step_in_epoch=self.pos.step_in_epoch,
                    steps_per_epoch=self.steps_per_epoch,
                    throughput=points / elapsed,
                    eta_s=remaining * elapsed / max(1, points / cfg.batch_size),
                    loss=loss,
                )
            )
            every = cfg.checkpoint.every_steps
            if every and self.pos.global_step % every == 0:
                self._save_checkpoint()
            if self.cb.should_stop():
                path = self._save_checkpoint()
                raise TrainingCancelled(epoch + 1, self.pos.global_step, path)

    def _step(self, rows: np.ndarray) -> float | None:
        """One step on the points `rows`; returns the pre-step loss on logging steps."""
        cfg = self.config
        factor = lr_factor(
            self.pos.global_step,
            self.total_steps,
            cfg.schedule.warmup_fraction,
            cfg.schedule.decay,
            cfg.schedule.min_lr_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.encoder_lr * factor
        batch = self.encoder.make_batch(self.train_inputs, rows, self.device)
        pair_rows, pair_cols = batch_pairs(self.fit_split.labels, rows)
        with self.memory.phase("encoder_forward"):
            embedding = self.encoder(batch)
        detached = embedding.detach().float()
        loss = None
        if self.pos.global_step % cfg.log_every == 0:
            loss = self.head.loss(detached, pair_rows, pair_cols)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"non-finite loss {loss}", self.pos.epoch + 1, self.pos.global_step
                )
        with self.memory.phase("head_step"):
            grad = self.head.step(detached, pair_rows, pair_cols, cfg.schedule.head_lr * factor)
        with self.memory.phase("encoder_backward"):
            embedding.backward(grad.to(embedding.dtype))
        with self.memory.phase("optimizer_step"):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.telemetry["static"] is None:
            self.telemetry["static"] = static_record(
                self.device, self.head.state_dict(), self.encoder, self.optimizer
            )
            self.cb.on_telemetry(self.telemetry["static"])
        return loss

    def _check_finite(self) -> None:
        """Raise `TrainingDiverged` naming the first encoder or head tensor with a NaN/Inf."""
        tensors = [(f"encoder.{n}", t) for n, t in self.encoder.named_parameters()]
        tensors += [(f"head.{n}", t) for n, t in self.head.state_dict().items()]
        for name, tensor in tensors:
            if not tensor.is_floating_point():
                continue
            chunks = tensor.detach().reshape(-1).split(1 << 24)  # bounded fp32 copies (fp8 too)
            if not all(bool(torch.isfinite(chunk.float()).all()) for chunk in chunks):
                raise TrainingDiverged(
                    f"non-finite values in weight {name}", self.pos.epoch + 1, self.pos.global_step
                )

    def _end_epoch(self) -> None:
        cfg = self.config
        epoch = self.pos.epoch + 1
        self._check_finite()
        record = self.memory.epoch_record(epoch, self.pos.global_step)
        self.telemetry["epochs"].append(record)
        self.cb.on_telemetry(record)
        write_json_atomic(self.out_dir / "telemetry.json", self.telemetry)
        if cfg.eval.every_epoch and self.eval_split is not None:
            self.cb.on_phase("evaluating")
            metrics = self.evaluate()
            self.history.append({"epoch": epoch, "step": self.pos.global_step, **metrics})
            self.cb.on_metrics(epoch, metrics)
            key = cfg.eval.select_metric
            if key not in metrics:
                raise ConfigError(f"eval.select_metric {key!r} is not one of {sorted(metrics)}")
            if self.best is None or metrics[key] > self.best[1][key]:
                self.best = (epoch, metrics)
                self.cb.on_phase("saving")
                self._save_model(self.best_dir, metrics)
        self.pos.epoch += 1
        self.pos.step_in_epoch = 0
        self.cb.on_phase("saving")
        self._save_checkpoint()

    def evaluate(self) -> dict[str, float]:
        """P/nDCG/PSP/R@k on the evaluation split, filter pairs removed before the top k.

        With fusion the metrics are the fused ranking's, and `head P@1` etc. the head's alone.
        """
        cfg = self.config
        split = self.eval_split
        k = max(cfg.eval.ks) + max_filters_per_row(split.filter_pairs, split.num_points)
        logits, ids = predict_topk(
            self.encoder,
            self.head,
            self.eval_inputs,
            split.num_points,
            k if self.fusion is None else max(k, self.fusion.candidates),
            cfg.eval.batch_size,
            self.device,
        )
        head_metrics = evaluate(
            ids[:, :k],
            split.labels,
            ks=cfg.eval.ks,
            propensities=self.propensities,
            filter_pairs=split.filter_pairs,
        )
        if self.fusion is None or self.eval_priors is None:
            return head_metrics
        _, fused_ids = fuse_topk(logits, ids, self.eval_priors, self.fusion.scale, k)
        metrics = evaluate(
            fused_ids,
            split.labels,
            ks=cfg.eval.ks,
            propensities=self.propensities,
            filter_pairs=split.filter_pairs,
        )
        return {**metrics, **{f"head {key}": value for key, value in head_metrics.items()}}

    def _finish(self) -> TrainResult:
        self.cb.on_phase("saving")
        last = self.history[-1] if self.history else None
        last_metrics = None if last is None else {k: v for k, v in last.items() if "@" in k}
        last_dir = self._save_model(self.out_dir / "model-last", last_metrics)
        model_dir = self.out_dir / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        # The best epoch becomes the model only when it was chosen on a validation slice of train:
        # picking it by the test split would report test metrics tuned on that split.
        chosen_on_validation = self.config.eval.split == "validation"
        if chosen_on_validation and self.best is not None and self.best_dir.exists():
            shutil.copytree(self.best_dir, model_dir)
        else:
            shutil.copytree(last_dir, model_dir)
        write_json_atomic(self.out_dir / "metrics.json", self._metrics_summary(last_metrics))
        self.cb.on_log(f"model written to {model_dir}")
        return TrainResult(
            out_dir=self.out_dir,
            model_dir=model_dir,
            last_model_dir=last_dir,
            best_epoch=None if self.best is None else self.best[0],
            best_metrics=None if self.best is None else self.best[1],
            last_metrics=last_metrics,
            history=list(self.history),
            steps=self.pos.global_step,
        )

    def _metrics_summary(self, current: dict[str, float] | None) -> dict:
        return {
            "best_epoch": None if self.best is None else self.best[0],
            "best": None if self.best is None else self.best[1],
            "metrics": current,
            "history": self.history,
        }

    def _save_model(self, directory: Path, metrics: dict[str, float] | None) -> Path:
        # Imported here: elmo_core.inference imports elmo_core.training (for TrainConfig), so a
        # module-level import would make `import elmo_core.inference` first a circular import.
        from elmo_core.inference.artifact import save_model

        return save_model(
            directory,
            config=self.config,
            encoder=self.encoder,
            head=self.head,
            label_texts=self.dataset.label_texts,
            fusion=self.fusion,
            metrics=self._metrics_summary(metrics),
            telemetry=self.telemetry,
        )

    # -- checkpoints ---------------------------------------------------------------------------

    def _save_checkpoint(self) -> Path:
        tensors = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        tensors.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        optim_tensors, optim_meta = split_optimizer_state(self.optimizer)
        tensors.update(optim_tensors)
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        state = {
            "config": self.config.model_dump(mode="json"),
            "epoch": self.pos.epoch,
            "step_in_epoch": self.pos.step_in_epoch,
            "global_step": self.pos.global_step,
            "schedule": {"step": self.pos.global_step, "total_steps": self.total_steps},
            "data_order": {"seed": self.config.seed, "epoch": self.pos.epoch},
            "optimizer": optim_meta,
            "rng": rng_meta,
            "best": None if self.best is None else {"epoch": self.best[0], "metrics": self.best[1]},
            "history": self.history,
            "telemetry": self.telemetry,
        }
        return save_checkpoint(self.ckpt_dir, self.pos.global_step, tensors, state)

    def _load_checkpoint(self) -> None:
        tensors, state, folder = load_checkpoint(self.ckpt_dir)
        saved = state["config"]
        current = self.config.model_dump(mode="json")
        if saved != current:
            diff = sorted(_diff_keys(saved, current))
            raise CheckpointError(
                f"cannot resume from {folder}: the config differs in {', '.join(diff)}"
            )
        head_state = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
        self.head.load_state_dict({k: v.to(self.device) for k, v in head_state.items()})
        encoder_state = {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}
        self.encoder.load_state_dict(encoder_state)
        restore_optimizer_state(self.optimizer, tensors, state["optimizer"])
        restore_rng_state(tensors, state["rng"])
        self.pos = _Position(state["epoch"], state["step_in_epoch"], state["global_step"])
        best = state["best"]
        self.best = None if best is None else (int(best["epoch"]), best["metrics"])
        self.history = state["history"]
        self.telemetry = state["telemetry"]
        self.cb.on_log(
            f"resumed from {folder.name}: epoch {self.pos.epoch + 1}, step {self.pos.global_step}"
        )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in set(a) | set(b):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys.extend(_diff_keys(va, vb, f"{prefix}{key}."))
        elif va != vb:
            keys.append(f"{prefix}{key}")
    return keys
