"""The text priors fitted beside the first epoch (`fusion.fit_beside_training`).

The priors' fit depends only on the train split and the label texts, and a run first needs them
when it evaluates its first epoch. A GPU's training leaves the host's cores idle, so
`PriorsBesideTraining.start` forks a process that fits them there while the GPU trains (before,
the GPU waited for them); the process writes them into the run directory as a model stores them
(`fusion.json` + `fusion.safetensors`, see `FusedScorer.save`) with its log lines, and exits.
`result` waits for it and reads them back. The process leaves `RESERVED_CORES` cores to the
trainer's own threads and runs at a lower priority, and logs into its result file rather than
through the run's callbacks (a job's callbacks hold its database connections, which a forked
process must not use).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

from elmo_core.errors import ElmoError
from elmo_core.fusion import FusedScorer
from elmo_core.parallel import available_cores, start_forked
from elmo_core.text_features.word_tfidf import TfidfFeaturizer
from elmo_core.training.checkpoint import write_json_atomic
from elmo_core.training.telemetry import peak_rss_bytes

RESERVED_CORES = 4
"""Cores the fitting process leaves to the trainer (its step loop, batch thread, the CUDA
driver's threads); it also runs at a lower priority (`NICENESS`), so that the step loop does not
queue behind it (on a 16-core H200 host the 670K epoch's steps took 13.4 ms while 14 workers fit
the priors, 7.9 ms after)."""
NICENESS = 10
"""Added to the fitting process's nice value (its workers inherit it)."""
RESULT = "result.json"

PriorsFit = Callable[[Callable[[str], None]], FusedScorer | None]
"""Fits the priors, logging through its argument (`assembly.fit_priors` with its inputs)."""


class PriorsFitError(ElmoError):
    """The process fitting the text priors failed; says how."""


class PriorsBesideTraining:
    """One run's priors, fitted in a forked process; `start`, then `result` (or `cancel`)."""

    def __init__(self, folder: Path, encoder_featurizer: TfidfFeaturizer | None) -> None:
        """`folder`: where the process writes the priors (emptied; removed once read back);
        `encoder_featurizer`: the encoder's TF-IDF when the neighbour prior shares it (it is
        not written, as in a model)."""
        self.folder = folder
        self.encoder_featurizer = encoder_featurizer
        self.process: BaseProcess | None = None

    def start(self, fit: PriorsFit) -> None:
        """Fork the process that runs `fit` and writes what it returns."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.process = start_forked(_fit_and_write, fit, self.folder, self.encoder_featurizer)

    def result(self, log: Callable[[str], None]) -> FusedScorer | None:
        """Wait for the process; relay its log lines to `log`; the fitted priors (None when
        `fit` returned None). Raises `PriorsFitError` when the process failed or was killed."""
        assert self.process is not None, "start() first"
        waiting = time.perf_counter()
        self.process.join()
        waited = time.perf_counter() - waiting
        code = self.process.exitcode
        self.process = None
        try:
            record = _read_record(self.folder / RESULT)
            for line in record.get("lines", []):
                log(line)
            if record.get("error") or code != 0:
                why = record.get("error") or _exit_reason(code)
                raise PriorsFitError(f"fitting the text priors failed: {why}")
            fusion = None
            if record["fitted"]:
                fusion = FusedScorer.load(self.folder, self.encoder_featurizer)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        log(
            f"priors fitted beside the first epoch in {record['seconds']:.1f} s on "
            f"{record['cores']} cores (peak RSS {record['peak_rss'] / 2**30:.2f} GiB); the run "
            f"waited {waited:.1f} s for them"
        )
        return fusion

    def cancel(self) -> None:
        """Stop the process if it still runs and remove what it wrote."""
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _fit_and_write(
    fit: PriorsFit, folder: Path, encoder_featurizer: TfidfFeaturizer | None
) -> None:
    """The forked process: fit, write the priors and the record, exit (without the parent's
    exit handlers: they belong to the parent's resources)."""
    cores = _leave_cores(RESERVED_CORES)
    os.nice(NICENESS)
    lines: list[str] = []
    started = time.perf_counter()
    record: dict = {"lines": lines, "cores": cores, "fitted": False, "error": None}
    try:
        fusion = fit(lines.append)
        if fusion is not None:
            fusion.save(folder, encoder_featurizer)
        record["fitted"] = fusion is not None
    except Exception as exc:  # reported by the parent, which raises it
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["seconds"] = time.perf_counter() - started
    record["peak_rss"] = peak_rss_bytes()
    write_json_atomic(folder / RESULT, record)
    os._exit(0 if record["error"] is None else 1)


def _leave_cores(reserved: int) -> int:
    """Pin this process (and the workers it forks) off `reserved` of its cores when it has
    more than `reserved` + 1; the cores it keeps."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > reserved + 1:
            os.sched_setaffinity(0, cores[reserved:])
    return available_cores()


def _read_record(path: Path) -> dict:
    """The process's record; empty when it died before writing one."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _exit_reason(code: int | None) -> str:
    """Why a process ended with `code` and no record of its own."""
    if code is not None and code < 0:
        return f"its process was killed by signal {-code} (out of host memory?)"
    return f"its process exited with code {code}"
