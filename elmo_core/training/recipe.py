"""The training recipe: one run of encoder + low-precision head, with hooks (torchtune style).

    setup      seeds, splits, encoder (pure BF16 or fp32), text priors, optimizer, head; or the
               state of the latest checkpoint. On a GPU the text priors are fitted beside the
               first epoch instead, in a forked process, and read back before its evaluation
               (`background_priors`)
    train      epochs over shuffled batches; per step: encoder forward -> head.step (updates the
               head, returns dE) -> e.backward(dE) -> encoder optimizer step
    select     after each epoch: evaluate the validation slice of train (fitting the fusion
               weights on it, `fusion.fit_weights`); the best epoch (by `eval.select_metric`) is
               written to `model/`, the only model copy; `eval.patience` epochs without reaching
               the best again stop the run early
    report     at the end: the test split is evaluated once, on the model in `model/`, and those
               are the metrics shown everywhere (`metrics.json`, the CLI, the job)

The batches of epoch e are `batches.epoch_batches(seed, e, ...)`, so a resumed run replays the same
batches from its saved (epoch, step); the torch RNG (dropout) and the head's step counter
(stochastic rounding) are restored from the checkpoint, which makes an interrupted and resumed CPU
run end with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from optimi import AdamW

from elmo_core.config import TrainConfig
from elmo_core.data import XMCDataset, XMCSplit
from elmo_core.data.splits import select_splits
from elmo_core.dtypes import all_finite
from elmo_core.encoders import (
    MemberEncoders,
    SparseEncoder,
    TrainingEncoder,
    TransformerEncoder,
    build_encoder,
    cast_encoder,
    enable_float8,
)
from elmo_core.encoders.bias import append_bias
from elmo_core.encoders.device import batch_to_device, pin_batch
from elmo_core.errors import ConfigError
from elmo_core.fusion import FusedScorer
from elmo_core.head import MemberHeads, TrainingHead, XMCHead
from elmo_core.model.artifact import artifact_state, artifact_tensors, load_model, save_model
from elmo_core.model.evaluation import (
    evaluate_split,
    evaluate_split_fitting_weights,
    split_propensities,
)
from elmo_core.model.scoring import prior_word_rows, shared_word_featurizer, text_priors
from elmo_core.parallel import can_fork
from elmo_core.precision import is_low_precision
from elmo_core.training.assembly import (
    choose_vote_power,
    fit_priors,
    init_head_from_label_texts,
    plan_priors,
    vote_powers,
    with_label_points,
)
from elmo_core.training.background_priors import PriorsBesideTraining
from elmo_core.training.background_writes import BackgroundWriter, frozen
from elmo_core.training.batches import (
    HostBatch,
    StepInputs,
    batch_pairs,
    epoch_batches,
    prefetch,
    seed_everything,
)
from elmo_core.training.callbacks import (
    Progress,
    TrainerCallbacks,
    TrainingCancelled,
    TrainingDiverged,
    TrainResult,
)
from elmo_core.training.checkpoint import write_json_atomic
from elmo_core.training.graphed_encoder import (
    GRAPH_TOKEN_MULTIPLE,
    GraphedEncoderStep,
    padded_widths,
)
from elmo_core.training.member_lanes import MemberLanes, lane_count
from elmo_core.training.row_sparse_adamw import RowSparseAdamW
from elmo_core.training.run_state import RunState, restore_run, save_run
from elmo_core.training.schedule import lr_factor
from elmo_core.training.telemetry import (
    TIMED_EVERY,
    MemoryTelemetry,
    PhaseTimer,
    optimizer_state_bytes,
    static_record,
)

RUN_CONFIG = "run_config.json"
METRICS = "metrics.json"
MODEL = "model"
PRIORS = "priors"
"""Where the priors fitted beside the first epoch are written until the run reads them."""
PREFETCH = 4
"""Training batches prepared ahead of the GPU."""
LANE_LEAD = 4
"""Steps queued on the member lanes at most: a lane whose member's step ended early goes on
with its next step instead of waiting for the other lanes at every step (on the 2-core VM,
wordnet-taxonomy's lanes waited 5-8% of an epoch at that barrier)."""
MEMBER_SEED_STRIDE = 1_000_003
"""Member m's head rounds, and its CPU dropout draws, with the seed `seed + m x MEMBER_SEED_STRIDE`
(member 0: the run's)."""


def member_seeds(seed: int, count: int) -> list[int]:
    """The seeds of `count` members of a run seeded `seed` (`MEMBER_SEED_STRIDE` apart)."""
    return [seed + m * MEMBER_SEED_STRIDE for m in range(count)]


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
    try:
        recipe.setup(resume)
        return recipe.train()
    finally:
        recipe.close()


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


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
        self.model_dir = out_dir / MODEL
        self.run = RunState()
        self.priors_beside: PriorsBesideTraining | None = None
        self.checkpoints = BackgroundWriter("checkpoint-writer")
        self.model_writes = BackgroundWriter("model-writer")
        self.lanes: MemberLanes | None = None
        self.last_checkpoint = time.monotonic()
        """When the last checkpoint was written (`time.monotonic`; before any: training's start)."""

    # -- setup ---------------------------------------------------------------------------------

    def setup(self, resume: bool) -> None:
        """Build everything; with `resume`, load the state of the latest checkpoint."""
        cfg = self.config
        self.cb.on_phase("loading")
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        cfg, notes = cfg.for_device(self.device.type)
        self.config = cfg
        for note in notes:
            self.cb.on_log(note)
        assert cfg.batch_size is not None and cfg.log_every is not None
        self.batch_size: int = cfg.batch_size
        self.log_every: int = cfg.log_every
        self.timer = PhaseTimer(self.device, self._record_phase)
        self.splits = select_splits(cfg, self.dataset)
        train = self.splits.train
        self.eval_split = self._evaluation_split()
        self.fit_split = with_label_points(cfg, train, self.dataset.label_texts)
        self.cb.on_phase("featurizing")
        with self.timer.phase("featurizing") as info:
            encoder = build_encoder(
                cfg.encoder,
                train.texts,
                None if train.features is None else train.features.shape[1],
            )
            self.encoder: TrainingEncoder = encoder
            assert cfg.members is not None
            if cfg.members > 1:
                assert isinstance(encoder, SparseEncoder)
                seeds = member_seeds(cfg.seed, cfg.members)
                self.encoder = MemberEncoders(cfg.encoder, encoder, cfg.members, seeds)
                self.cb.on_log(f"{cfg.members} members, saved merged into one model")
            self.cb.on_log(f"encoder {cfg.encoder.name}: {self.encoder.dim} dims")
            self.train_inputs = self.encoder.featurize(
                self.fit_split.texts, self.fit_split.features
            )
            self.eval_inputs = None
            if self.eval_split is not None:
                self.eval_inputs = self.encoder.featurize(
                    self.eval_split.texts, self.eval_split.features
                )
            info["texts"] = self.fit_split.num_points
        self.propensities = split_propensities(train.labels, cfg.eval)
        if self._fits_priors_beside_training():
            self.priors_beside = PriorsBesideTraining(
                self.out_dir / PRIORS, shared_word_featurizer(self.encoder)
            )
            self.priors_beside.start(
                partial(
                    fit_priors,
                    cfg,
                    train,
                    self.dataset.label_texts,
                    self.encoder,
                    self.train_inputs,
                    linear=self._slice_fits_weights()[0],
                )
            )
            self.cb.on_log("the text priors are fitted beside the first epoch")
        else:
            self.cb.on_phase("priors")
            with self.timer.phase("priors"):
                fusion = fit_priors(
                    cfg,
                    train,
                    self.dataset.label_texts,
                    self.encoder,
                    self.train_inputs,
                    self.cb.on_log,
                    linear=self._slice_fits_weights()[0],
                )
                self._prepare_priors(fusion)
        cast_encoder(self.encoder, cfg.precision).to(self.device)
        self._warn_about_encoder()
        self.train_forward: Callable[[dict[str, torch.Tensor]], torch.Tensor] = self.encoder
        self.graphs: GraphedEncoderStep | None = None
        if cfg.encoder.compile and self.device.type == "cuda":
            self.train_forward = torch.compile(self.encoder, dynamic=True)
            self.cb.on_log("the encoder trains through torch.compile (compiles at its first steps)")
        elif self._wants_graphs():
            assert isinstance(self.encoder, TransformerEncoder)
            self.encoder.pad_to_multiple_of = GRAPH_TOKEN_MULTIPLE
            self.graphs = GraphedEncoderStep(
                self.encoder, self.batch_size, self.device, self.cb.on_log
            )
            self.train_forward = self.graphs
            self.cb.on_log("the encoder trains through CUDA graphs (one per batch shape)")
        self.optimizers = self._build_optimizers()
        self.head = self._build_head()
        self.lanes = self._member_lanes()
        self.steps_per_epoch = math.ceil(self.fit_split.num_points / self.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.memory = MemoryTelemetry(self.device)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            setup_phases = self.run.telemetry.get("phases", [])
            self.run, folder = restore_run(
                self.ckpt_dir, cfg, self.encoder, self.head, self.optimizers, self.device
            )
            self.run.telemetry.setdefault("phases", []).extend(setup_phases)
            if self.priors_beside is None:
                self._restore_fusion_weights()
            self.cb.on_log(
                f"resumed from {folder.name}: epoch {self.run.epoch + 1}, "
                f"step {self.run.global_step}"
            )
        else:
            init_head_from_label_texts(
                cfg, self.head, self.encoder, self.dataset.label_texts, self.device, self.cb.on_log
            )
            for stale in (self.ckpt_dir, self.model_dir):
                if stale.exists():
                    shutil.rmtree(stale)
            write_json_atomic(self.out_dir / RUN_CONFIG, cfg.model_dump(mode="json"))

    def wait_for_priors(self) -> None:
        """The priors fitted beside the first epoch (`fusion.fit_beside_training`), waited for,
        read back and prepared as `setup` prepares them otherwise; once, before the first
        evaluation (nothing when they were fitted in `setup`)."""
        beside = self.priors_beside
        if beside is None:
            return
        self.priors_beside = None
        self.cb.on_phase("priors")
        with self.timer.phase("priors"):
            self._prepare_priors(beside.result(self.cb.on_log))
        self._restore_fusion_weights()  # a resumed run's; nothing before a first evaluation

    def close(self) -> None:
        """Stop what the run still does beside the training (the priors' process, if any) and
        let the model and checkpoint being written become current."""
        if self.priors_beside is not None:
            self.priors_beside.cancel()
            self.priors_beside = None
        self._close_lanes()
        try:
            self.model_writes.wait()
        finally:
            self.checkpoints.wait()

    def _fits_priors_beside_training(self) -> bool:
        """`fusion.fit_beside_training` (None: on CUDA), where a process can be forked and
        there are priors to fit."""
        cfg = self.config
        beside = cfg.fusion.fit_beside_training
        if beside is None:
            beside = self.device.type == "cuda"
        texts = self.splits.train.texts is not None
        return beside and cfg.fusion.active and texts and can_fork()

    def _prepare_priors(self, fusion: FusedScorer | None) -> None:
        """Plan the fitted priors' feature caps, then score the per-epoch evaluation split with
        them once (choosing the vote power there when the weights are fitted)."""
        cfg = self.config
        if fusion is not None:
            plan_priors(
                fusion,
                self.splits.train,
                self.encoder,
                self.train_inputs,
                self.cb.on_log,
                search_texts=self._largest_scored_split(),
                device=self.device,
            )
        self.fusion = fusion
        # The priors are fitted on the train split only (the validation slice is neither a
        # neighbour nor in an idf): the slice's priors are those of unseen texts.
        # `prior_fusion` holds every prior with a positive configured weight; `fusion` is the
        # model's, re-weighted by each epoch's fit.
        self.prior_fusion = self.fusion
        self.fits_weights = self._fits_weights()
        self.eval_priors = None
        self.eval_prior_scores = None
        if self.eval_split is not None:
            split = self.eval_split
            if self.fits_weights:
                assert self.fusion is not None and split.texts is not None
                scores = self.fusion.prior_scores(
                    split.texts,
                    self.dataset.num_labels,
                    prior_word_rows(self.encoder, self.fusion, self.eval_inputs),
                    device=self.device,
                    log=self.cb.on_log,
                    vote_powers=vote_powers(cfg, self.fusion),
                )
                self.eval_prior_scores = choose_vote_power(
                    cfg, self.fusion, scores, split, self.propensities, self.cb.on_log
                )
            else:
                self.eval_priors = text_priors(
                    self.encoder,
                    self.fusion,
                    split.texts,
                    self.eval_inputs,
                    self.dataset.num_labels,
                    device=self.device,
                    log=self.cb.on_log,
                )

    def _build_head(self) -> TrainingHead:
        """The head; with members, one per member encoder over its columns (own rounding seed)."""
        cfg = self.config
        counts = np.bincount(self.splits.train.labels.indices, minlength=self.dataset.num_labels)

        def head(dim: int, seed: int) -> XMCHead:
            return XMCHead(
                self.dataset.num_labels,
                dim,
                precision=cfg.precision,
                chunk_size=cfg.head.chunk_size,
                head_ratio=cfg.head.head_ratio,
                kahan_dtype=cfg.head.kahan_dtype,
                weight_decay=cfg.head.weight_decay,
                init_std=cfg.head.init_std,
                seed=seed,
                device=self.device,
                label_counts=torch.from_numpy(counts),
                gradient_floor=cfg.head.gradient_floor or 0.0,
                below_floor_rate=cfg.head.below_floor_rate,
                screen_window=cfg.head.screen_window,
            )

        if not isinstance(self.encoder, MemberEncoders):
            return head(self.encoder.dim, cfg.seed)
        columns = [self.encoder.member_columns(m) for m in range(self.encoder.count)]
        seeds = member_seeds(cfg.seed, len(columns))
        heads = [head(len(cols), seed) for cols, seed in zip(columns, seeds, strict=True)]
        return MemberHeads(heads, columns, self.encoder.dim)

    def _build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The encoder's optimizers by checkpoint name: optimi AdamW ("encoder") for the dense
        parameters; on the CPU a sparse encoder's n-gram table gets sparse gradients and the lazy
        `RowSparseAdamW` ("rows"), whose step costs the rows a batch touches, not the table."""
        cfg = self.config
        low = is_low_precision(cfg.precision)
        dense = list(self.encoder.parameters())
        optimizers: dict[str, torch.optim.Optimizer] = {}
        if isinstance(self.encoder, SparseEncoder | MemberEncoders) and self.device.type == "cpu":
            self.encoder.use_sparse_gradients()
            tables = self.encoder.tables()
            dense = [p for p in dense if all(p is not table for table in tables)]
            optimizers["rows"] = RowSparseAdamW(
                tables,
                lr=cfg.encoder_lr,
                weight_decay=cfg.schedule.encoder_weight_decay,
                kahan_sum=low,
            )
        if dense:
            optimizers["encoder"] = AdamW(
                dense,
                lr=cfg.encoder_lr,
                weight_decay=cfg.schedule.encoder_weight_decay,
                kahan_sum=low,
                foreach=self.device.type == "cuda",  # 1.6x the steps/s of its default on the H200
                triton=False,
            )
        return optimizers

    def _member_lanes(self) -> MemberLanes | None:
        """Threads that step the members side by side (`member_lanes.py`): on the CPU, for
        members of a sparse encoder whose tables the row-sparse optimiser alone updates, when
        `member_lanes` (None: one per member while each keeps a core) asks for more than one."""
        cfg, encoder = self.config, self.encoder
        if not (
            self.device.type == "cpu"
            and isinstance(encoder, MemberEncoders)
            and isinstance(self.head, MemberHeads)
            and set(self.optimizers) == {"rows"}
        ):
            return None
        threads = torch.get_num_threads()
        lanes = lane_count(encoder.count, threads, cfg.member_lanes)
        if lanes < 2:
            return None
        per_lane = max(1, threads // lanes)
        count = encoder.count
        self.cb.on_log(f"{count} members stepped on {lanes} lanes, {per_lane} thread(s) each")
        return MemberLanes(lanes, per_lane)

    def _close_lanes(self) -> None:
        if self.lanes is not None:
            self.lanes.close()
            self.lanes = None

    def _record_phase(self, record: dict) -> None:
        """Keep a phase record in the run's telemetry, report it, and log its cost."""
        self.run.telemetry.setdefault("phases", []).append(record)
        self.cb.on_telemetry(record)
        self.cb.on_log(
            f"{record['phase']}: {record['seconds']:.1f} s, host RSS "
            f"{record['host_rss'] / 2**30:.2f} GiB"
        )

    def _evaluation_split(self) -> XMCSplit | None:
        """The split evaluated after each epoch: the validation slice (selects the model) or, if
        the config says so, the test split (monitoring only); None when there is none."""
        cfg = self.config
        if cfg.eval.patience and cfg.eval.split == "test":
            self.cb.on_log(
                "eval.split is test: nothing is selected on it, so no early stopping "
                "(eval.patience applies to the validation slice only)"
            )
        if not cfg.eval.every_epoch:
            return None
        if cfg.eval.split == "test":
            if self.splits.test is None:
                self.cb.on_log("no test split: per-epoch evaluation is skipped")
            return self.splits.test
        if self.splits.validation is None:
            self.cb.on_log("no validation slice (train too small or validation_fraction 0): "
                           "the last epoch is the model")  # fmt: skip
        return self.splits.validation

    def _slice_fits_weights(self) -> tuple[bool, str]:
        """Whether the per-epoch evaluation can fit the fusion weights (`fusion.fit_weights` and
        a validation slice of at least `fusion.fit_min_points`, never the test split), and why
        not when it cannot."""
        cfg = self.config
        split = self.eval_split
        if not cfg.fusion.fit_weights:
            return False, "fusion.fit_weights is off"
        if cfg.eval.split == "validation" and split is not None:
            if split.num_points >= cfg.fusion.fit_min_points:
                return True, ""
            return False, (
                f"the validation slice has {split.num_points:,} points, under "
                f"fusion.fit_min_points {cfg.fusion.fit_min_points:,}"
            )
        if cfg.eval.split == "test":
            return False, "never on the test split"
        return False, "no validation slice evaluated after each epoch"

    def _fits_weights(self) -> bool:
        """Whether each epoch fits the fusion weights: a slice to fit them on
        (`_slice_fits_weights`) and a prior on. Logs why not."""
        fusion = self.fusion
        if fusion is None or not fusion.active:
            return False
        fits, why = self._slice_fits_weights()
        if fits:
            return True
        if not self.config.fusion.fit_weights:
            return False
        self.cb.on_log(
            f"fusion weights not fitted ({why}): neighbour {fusion.neighbour_weight:g}, "
            f"label text {fusion.label_text_weight:g}, linear {fusion.linear_weight:g} as "
            "configured"
        )
        return False

    def _restore_fusion_weights(self) -> None:
        """After a resume: the fusion weights of the last evaluated epoch, as the uninterrupted
        run holds them (the model in memory is that epoch's)."""
        rows = [row for row in self.run.history if "fusion" in row]
        if self.fits_weights and rows and self.prior_fusion is not None:
            weights = rows[-1]["fusion"]
            self.fusion = self.prior_fusion.with_weights(
                weights["neighbour_weight"],
                weights["label_text_weight"],
                weights.get("head_temperature", 1.0),
                weights.get("linear_weight", 0.0),
            )

    def _wants_graphs(self) -> bool:
        """CUDA graphs for a transformer on CUDA, unless compiled or in float8 (see config)."""
        cfg = self.config.encoder
        return (
            cfg.cuda_graphs
            and self.device.type == "cuda"
            and isinstance(self.encoder, TransformerEncoder)
            and self.encoder.pad_to_multiple_of is None
        )

    def _warn_about_encoder(self) -> None:
        cfg = self.config
        low = is_low_precision(cfg.precision)
        if self.device.type == "cpu" and not cfg.encoder.is_sparse and low:
            self.cb.on_log(
                "a pure-BF16 transformer trains slowly on CPUs without native BF16 matmuls "
                "(15x slower than fp32 on a 2-core CI machine): prefer a GPU or --precision fp32"
            )
        if cfg.encoder.float8 and isinstance(self.encoder, TransformerEncoder):
            if enable_float8(self.encoder):
                self.cb.on_log("transformer linear layers use torchao float8 training")
            else:
                self.cb.on_log("float8 requested but unavailable (needs torchao and an FP8 GPU)")

    # -- the loop ------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        """Run the remaining epochs, then report the saved model on the test split."""
        self.last_checkpoint = time.monotonic()
        while self.run.epoch < self.config.epochs and self.run.stopped_early is None:
            self.cb.on_phase("training")
            self._train_epoch()
            self._end_epoch()
        self._close_lanes()
        return self._finish()

    def _train_epoch(self) -> None:
        cfg, run = self.config, self.run
        lengths = getattr(self.train_inputs, "lengths", None)
        order = epoch_batches(
            cfg.seed, run.epoch, self.fit_split.num_points, self.batch_size, lengths
        )
        self.encoder.train()
        if self.graphs is not None and lengths is not None:  # captured in training mode
            self.graphs.prepare(
                padded_widths(lengths, order, self.batch_size, GRAPH_TOKEN_MULTIPLE)
            )
        self.memory.start_epoch()
        started, points = time.time(), 0
        every = cfg.checkpoint.every_steps
        window = LANE_LEAD if self.lanes is not None else 1
        pending: deque[tuple[int, Callable[[], float | None]]] = deque()

        def complete() -> None:
            """The oldest submitted step has ended: count it, report it, checkpoint."""
            nonlocal points
            size, result = pending.popleft()
            loss = result()
            run.step_in_epoch += 1
            run.global_step += 1
            points += size
            elapsed = max(time.time() - started, 1e-9)
            remaining = self.total_steps - run.global_step
            self.cb.on_progress(
                Progress(
                    epoch=run.epoch + 1,
                    epochs=cfg.epochs,
                    step=run.global_step,
                    total_steps=self.total_steps,
                    step_in_epoch=run.step_in_epoch,
                    steps_per_epoch=self.steps_per_epoch,
                    throughput=points / elapsed,
                    eta_s=remaining * elapsed / max(1, points / self.batch_size),
                    loss=loss,
                )
            )
            if every and run.global_step % every == 0:
                self._save_checkpoint()

        def host_batch(step: int) -> HostBatch:
            return self._host_batch(order[step])

        batches = prefetch(host_batch, range(run.step_in_epoch, self.steps_per_epoch), PREFETCH)
        try:
            for batch in batches:
                index = run.global_step + len(pending)  # this batch's global step, from 0
                pending.append((len(batch.rows), self._step(batch, index)))
                checkpoint_after = bool(every) and (index + 1) % every == 0
                while pending and (checkpoint_after or len(pending) >= window):
                    complete()
                if self.cb.should_stop():
                    while pending:
                        complete()
                    path = self._save_checkpoint()
                    self.checkpoints.wait()
                    raise TrainingCancelled(run.epoch + 1, run.global_step, path)
            while pending:
                complete()
        finally:
            batches.close()

    def _host_batch(self, rows: np.ndarray) -> HostBatch:
        """A step's inputs in pinned host memory (runs on the prefetch thread)."""
        inputs = self.encoder.make_batch(self.train_inputs, rows, torch.device("cpu"))
        pair_rows, pair_cols = batch_pairs(self.fit_split.labels, rows)
        pairs = pin_batch({"rows": pair_rows, "cols": pair_cols})
        return HostBatch(rows, pin_batch(inputs), pairs["rows"], pairs["cols"])

    def _step(self, host: HostBatch, index: int) -> Callable[[], float | None]:
        """Start global step `index` (from 0) on a prepared batch; returns what waits for it to
        end and gives its pre-step loss on logging steps (None on the others). The serial step
        has ended when this returns (nothing in it waits for the GPU except the loss on logging
        steps and the sampled phase timings); on the lanes the members' calls are queued, so the
        next steps can be started before this one ends (`LANE_LEAD`)."""
        cfg = self.config
        sched = cfg.schedule
        factor = lr_factor(
            index,
            self.total_steps,
            sched.warmup_fraction,
            sched.decay,
            sched.min_lr_ratio,
        )
        logging_step = index % self.log_every == 0
        timed = index % TIMED_EVERY == 0
        batch = batch_to_device(host.inputs, self.device)
        step = StepInputs(
            batch,
            host.pair_rows,
            host.pair_cols,
            sched.head_lr * factor,
            cfg.encoder_lr * factor,
            logging_step,
            timed,
        )
        if self.lanes is None:
            loss = self._serial_step(step)
            return lambda: self._ended(step, loss)
        laned = self._lane_steps(step)
        return lambda: self._ended(step, laned())

    def _ended(self, step: StepInputs, loss: float) -> float | None:
        """After a step: the divergence check on its loss, the run's static telemetry (once);
        its loss on logging steps, else None."""
        run = self.run
        if step.logging_step and not math.isfinite(loss):
            raise TrainingDiverged(f"non-finite loss {loss}", run.epoch + 1, run.global_step)
        if run.telemetry["static"] is None:
            optimizers = list(self.optimizers.values())
            record = static_record(self.device, self.head.state_dict(), self.encoder, optimizers[0])
            record["optimizer_states"] = sum(optimizer_state_bytes(o) for o in optimizers)
            run.telemetry["static"] = record
            self.cb.on_telemetry(record)
        return loss if step.logging_step else None

    def _serial_step(self, step: StepInputs) -> float:
        """The step of the whole encoder and head on every thread (members one after another);
        returns the pre-step loss on logging steps (NaN on the others)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = step.encoder_lr
        with self.memory.phase("encoder_forward", step.timed):
            embedding = self.train_forward(step.batch)
        detached = embedding.detach().float()
        rows, cols = step.pair_rows, step.pair_cols
        loss = self.head.loss(detached, rows, cols) if step.logging_step else math.nan
        with self.memory.phase("head_step", step.timed):
            grad = self.head.step(detached, rows, cols, step.head_lr)
        with self.memory.phase("encoder_backward", step.timed):
            if self.graphs is None:
                embedding.backward(grad.to(embedding.dtype))
            else:  # writes each parameter's gradient into its .grad
                self.graphs.backward(grad)
        with self.memory.phase("optimizer_step", step.timed):
            for optimizer in self.optimizers.values():
                optimizer.step()
                if self.graphs is None:  # the graphs' buffers stay (and are overwritten)
                    optimizer.zero_grad(set_to_none=True)
        return loss

    def _lane_steps(self, step: StepInputs) -> Callable[[], float]:
        """Every member's step queued on the lanes (`member_lanes.py`); returns what waits for
        them and gives the members' mean pre-step loss on logging steps (NaN on the others), as
        `MemberHeads.loss`. The phase timings are member 0's (the lanes run at once)."""
        assert self.lanes is not None
        encoder, heads = self.encoder, self.head
        assert isinstance(encoder, MemberEncoders) and isinstance(heads, MemberHeads)
        optimizer = self.optimizers["rows"]
        assert isinstance(optimizer, RowSparseAdamW)
        rows, cols = step.pair_rows, step.pair_cols

        def member_step(m: int) -> float:
            member = encoder.member(m)
            timed_here = step.timed and m == 0
            with self.memory.phase("encoder_forward", timed_here):
                out = member(step.batch)
            embedding = append_bias(out.detach().float(), encoder.bias_feature)
            loss = heads.heads[m].loss(embedding, rows, cols) if step.logging_step else 0.0
            with self.memory.phase("head_step", timed_here):
                grad = heads.member_step(m, embedding, rows, cols, step.head_lr)
            with self.memory.phase("encoder_backward", timed_here):
                out.backward(grad[:, : encoder.width].to(out.dtype))
            with self.memory.phase("optimizer_step", timed_here):
                optimizer.step_parameters(member.tables(), lr=step.encoder_lr)
            return loss

        queued = self.lanes.submit(member_step, encoder.count)

        def mean_loss() -> float:
            losses = queued.result()
            return sum(losses) / len(losses) if step.logging_step else math.nan

        return mean_loss

    def _check_finite(self) -> None:
        """Raise `TrainingDiverged` naming the first encoder or head tensor with a NaN/Inf."""
        tensors: list[tuple[str, torch.Tensor]]
        tensors = [(f"encoder.{n}", t) for n, t in self.encoder.named_parameters()]
        tensors += [(f"head.{n}", t) for n, t in self.head.state_dict().items()]
        for name, tensor in tensors:
            if tensor.is_floating_point() and not all_finite(tensor):
                raise TrainingDiverged(
                    f"non-finite values in weight {name}", self.run.epoch + 1, self.run.global_step
                )

    def _end_epoch(self) -> None:
        cfg, run = self.config, self.run
        epoch = run.epoch + 1
        self._check_finite()
        self.wait_for_priors()
        record = self.memory.epoch_record(epoch, run.global_step)
        run.telemetry["epochs"].append(record)
        self.cb.on_telemetry(record)
        write_json_atomic(self.out_dir / "telemetry.json", run.telemetry)
        selects = cfg.eval.split == "validation"
        if self.eval_split is not None:
            self.cb.on_phase("evaluating")
            with self.timer.phase(f"evaluating {cfg.eval.split}") as info:
                metrics, weights = self.evaluate()
                info["points"] = self.eval_split.num_points
            row: dict = {"epoch": epoch, "step": run.global_step, "split": cfg.eval.split}
            if weights is not None:
                row["fusion"] = weights
            run.history.append({**row, **metrics})
            self.cb.on_metrics(epoch, metrics)
            key = cfg.eval.select_metric
            if key not in metrics:
                raise ConfigError(f"eval.select_metric {key!r} is not one of {sorted(metrics)}")
            if selects and (run.best_metrics is None or metrics[key] >= run.best_metrics[key]):
                run.best_epoch, run.best_metrics = epoch, metrics
                self.cb.on_phase("saving")
                self._save_model()
            self._check_patience(epoch)
        run.epoch += 1
        run.step_in_epoch = 0
        if time.monotonic() - self.last_checkpoint >= cfg.checkpoint.min_interval_s:
            self.cb.on_phase("saving")
            self._save_checkpoint()

    def _largest_scored_split(self) -> int:
        """The most texts one evaluation of this run scores (test or the per-epoch split)."""
        splits = (self.splits.test, self.eval_split)
        return max([split.num_points for split in splits if split is not None], default=1)

    def _check_patience(self, epoch: int) -> None:
        """Early stopping: once `eval.patience` epochs in a row have not reached the selected
        epoch's metric on the validation slice, mark the run as stopped (before the epoch's
        checkpoint is written, so a resumed run stops at the same epoch)."""
        cfg, run = self.config, self.run
        patience = cfg.eval.patience
        if not patience or cfg.eval.split != "validation" or run.best_epoch is None:
            return
        if epoch - run.best_epoch < patience or epoch >= cfg.epochs:
            return
        run.stopped_early = {"epoch": epoch, "best_epoch": run.best_epoch, "patience": patience}
        self.cb.on_log(
            f"early stop after epoch {epoch}: {cfg.eval.select_metric} on validation has not "
            f"improved since epoch {run.best_epoch} (patience {patience})"
        )

    def evaluate(self) -> tuple[dict[str, float], dict[str, float] | None]:
        """The metrics of the model's current ranking on the per-epoch evaluation split, and
        the fusion weights fitted on it (None when they are not fitted); the model's fusion
        becomes the fitted one."""
        assert self.eval_split is not None
        if not self.fits_weights:
            metrics = evaluate_split(
                self.encoder,
                self.head,
                self.fusion,
                self.eval_split,
                config=self.config.eval,
                propensities=self.propensities,
                device=self.device,
                prepared=self.eval_inputs,
                priors=self.eval_priors,
            )
            return metrics, None
        assert self.prior_fusion is not None and self.eval_prior_scores is not None
        started = time.perf_counter()
        metrics, fit = evaluate_split_fitting_weights(
            self.encoder,
            self.head,
            self.prior_fusion,
            self.eval_split,
            config=self.config.eval,
            propensities=self.propensities,
            device=self.device,
            priors=self.eval_prior_scores,
            grid=self.config.fusion.weight_grid,
            linear_grid=self.config.fusion.linear_weight_grid,
            temperatures=self.config.fusion.temperature_grid,
            prepared=self.eval_inputs,
        )
        a, b, t = fit.neighbour_weight, fit.label_text_weight, fit.head_temperature
        c = fit.linear_weight
        self.fusion = self.prior_fusion.with_weights(a, b, t, c)
        key = self.config.eval.select_metric
        self.cb.on_log(
            f"epoch {self.run.epoch + 1}: fusion weights fitted on validation: neighbour {a:g}, "
            f"label text {b:g}, linear {c:g}, head temperature {t:g} ({key} "
            f"{metrics[key]:.2f}, head alone {metrics['head ' + key]:.2f}; "
            f"{fit.combinations} combinations in "
            f"{time.perf_counter() - started:.1f} s)"
        )
        weights = {"neighbour_weight": a, "label_text_weight": b, "head_temperature": t}
        return metrics, {**weights, "linear_weight": c}

    def _finish(self) -> TrainResult:
        """Save the last epoch when nothing was selected, then report the saved model once on
        the test split; its metrics go into `metrics.json` (run and model) and the result."""
        run = self.run
        self.wait_for_priors()
        if run.best_epoch is None:
            self.cb.on_phase("saving")
            run.best_epoch = run.epoch
            self._save_model()
        self.model_writes.wait()  # model/ is read back and completed below
        test_metrics = None
        if self.splits.test is not None:
            self.cb.on_phase("evaluating")
            with self.timer.phase("evaluating test") as info:
                test_metrics = self._evaluate_saved_model(self.splits.test)
                info["points"] = self.splits.test.num_points
        summary = self._summary(test_metrics)
        write_json_atomic(self.out_dir / METRICS, summary)
        write_json_atomic(self.model_dir / METRICS, summary)
        write_json_atomic(self.out_dir / "telemetry.json", run.telemetry)
        self.checkpoints.wait()  # the last one was written beside the test evaluation
        if not self.config.checkpoint.keep and self.ckpt_dir.exists():
            shutil.rmtree(self.ckpt_dir)  # the run is done: model/ is the one copy
        self.cb.on_log(f"model written to {self.model_dir}")
        return TrainResult(
            out_dir=self.out_dir,
            model_dir=self.model_dir,
            epoch=run.best_epoch,
            metrics=test_metrics,
            validation_metrics=run.best_metrics,
            history=list(run.history),
            steps=run.global_step,
            stopped_early=run.stopped_early,
            fusion=summary["fusion"],
        )

    def _evaluate_saved_model(self, split: XMCSplit) -> dict[str, float]:
        """The test metrics of the model in `model/`: the one in memory when it is the last
        epoch, else the saved artifact loaded back (as `elmo eval` would)."""
        if self.run.best_epoch == self.run.epoch:
            encoder, head, fusion = self.encoder, self.head, self.fusion
        else:
            del self.optimizers
            saved = load_model(self.model_dir, self.device)
            encoder, head, fusion = saved.encoder, saved.head, saved.fusion
        return evaluate_split(
            encoder,
            head,
            fusion,
            split,
            config=self.config.eval,
            propensities=self.propensities,
            device=self.device,
            log=self.cb.on_log,
        )

    def _summary(self, test_metrics: dict[str, float] | None) -> dict:
        """`metrics.json`: the saved model's epoch, its test metrics, how it was selected."""
        run = self.run
        selected = self.config.eval.split == "validation" and run.best_metrics is not None
        return {
            "epoch": run.best_epoch,
            "selected_on": "validation" if selected else "last epoch",
            "select_metric": self.config.eval.select_metric if selected else None,
            "split": None if test_metrics is None else "test",
            "metrics": test_metrics,
            "validation": run.best_metrics if selected else None,
            "stopped_early": run.stopped_early,
            "fusion": self._model_fusion(),
            "history": run.history,
        }

    def _model_fusion(self) -> dict | None:
        """The saved model's fusion weights (its epoch's fitted ones, or as configured) and the
        neighbour prior's vote power (None without that prior)."""
        if self.prior_fusion is None or not self.prior_fusion.active:
            return None
        neighbours = self.prior_fusion.neighbours
        power = {"vote_power": None if neighbours is None else neighbours.power}
        fitted = [
            row["fusion"]
            for row in self.run.history
            if row["epoch"] == self.run.best_epoch and "fusion" in row
        ]
        if fitted:
            return {**fitted[-1], **power, "fitted_on": "validation"}
        return {
            "neighbour_weight": self.prior_fusion.neighbour_weight,
            "label_text_weight": self.prior_fusion.label_text_weight,
            "head_temperature": self.prior_fusion.head_temperature,
            "linear_weight": self.prior_fusion.linear_weight,
            **power,
            "fitted_on": None,
        }

    def _save_model(self) -> Path:
        with self.timer.phase("saving model"):
            return self._write_model()

    def _write_model(self) -> Path:
        """Start writing the model as it is scored (members merged into one encoder and one
        head) on the model writer's thread, from host copies of its tensors and frozen JSON; the
        fitted featurizers and priors it also writes do not change during the run."""
        encoder, head = self.encoder, self.head
        merged = isinstance(encoder, MemberEncoders)
        if isinstance(encoder, MemberEncoders):
            assert isinstance(head, MemberHeads)
            encoder, head = encoder.merged(), head.merged()
        assert not isinstance(encoder, MemberEncoders) and isinstance(head, XMCHead)
        if merged:  # new tensors the training never changes: not copied again
            tensors = artifact_tensors(encoder, head)
        else:  # the training's own tensors: copied into the writer's buffers
            tensors = self.model_writes.host_copies(artifact_state(encoder, head))
        metrics, telemetry = frozen(self._summary(None)), frozen(self.run.telemetry)
        fusion, label_texts = self.fusion, self.dataset.label_texts

        def write() -> None:
            save_model(
                self.model_dir,
                config=self.config,
                encoder=encoder,
                head=head,
                label_texts=label_texts,
                fusion=fusion,
                metrics=metrics,
                telemetry=telemetry,
                tensors=tensors,
            )

        self.model_writes.submit(write)
        return self.model_dir

    def _save_checkpoint(self) -> Path:
        """Start writing a checkpoint of the run as it is now, on the checkpoint writer."""
        self.last_checkpoint = time.monotonic()
        return save_run(
            self.ckpt_dir,
            self.config,
            self.run,
            self.encoder,
            self.head,
            self.optimizers,
            self.total_steps,
            self.checkpoints,
        )
