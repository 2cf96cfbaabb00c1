"""Parse, validate and describe an uploaded dataset in a child process, never in the API's.

`load_dataset` + `dataset_stats` hold the whole parsed dataset in memory (a 100 MB JSONL file
grew the API's RSS by ~350 MB; the unpacked limit allows far more). Here they run in a fresh
interpreter (`python -m service.core.dataset_validation`, not a fork of the threaded API
process) whose address space is capped (RLIMIT_AS, `dataset_validation_memory_gib`) and whose
wall time is capped (`dataset_validation_timeout_seconds`). The child writes back only a small
JSON result: the format, name, counts and statistics, or the file, line and reason of a
DatasetFormatError; never the parsed arrays. The API runs at most
`max_concurrent_dataset_validations` uploads at once; another gets 429 with Retry-After.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elmo_core.errors import DatasetFormatError
from service.core.config import GIB, Settings
from service.errors import PayloadTooLarge, TooManyRequests, Unprocessable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""Retry-After of the 429 when every validation slot is taken (a validation takes seconds)."""
RESULT_FILE = "result.json"
STDERR_FILE = "stderr.txt"
STDERR_TAIL = 4000
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""The child parses in one thread: no per-thread BLAS buffers count against its address space."""
MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "failed to map segment")
"""Words in the stderr of a child that died of its memory cap without reporting it."""


@dataclass(frozen=True)
class ValidatedDataset:
    """What the validation worker reports of a valid dataset (everything the API stores)."""

    format: str
    name: str
    num_labels: int
    num_train: int
    num_test: int
    num_features: int | None
    stats: dict[str, Any]
    pid: int
    """The process that parsed the dataset (never the API's)."""


class ValidationWorkerError(RuntimeError):
    """The validation worker failed for a reason that is not the dataset's (-> 500, logged)."""


@contextmanager
def validation_slot(state: Any, settings: Settings) -> Iterator[None]:
    """Hold one of the app's `max_concurrent_dataset_validations` slots (the semaphore
    `state.dataset_validation_slots`, made with the app); TooManyRequests (429, Retry-After)
    when every one is taken."""
    slots = state.dataset_validation_slots
    if not slots.acquire(blocking=False):
        error = TooManyRequests(
            f"{settings.max_concurrent_dataset_validations} dataset uploads are being "
            "validated; retry shortly"
        )
        error.retry_after_s = RETRY_AFTER_S
        raise error
    try:
        yield
    finally:
        slots.release()


def validate_dataset(
    root: Path, format: str, settings: Settings, workdir: Path
) -> ValidatedDataset:
    """Load and describe the dataset at `root` in a child process; return its summary.

    `workdir` (created, empty, removed by the caller) receives the child's result and stderr.
    Raises DatasetFormatError (422, the file as the child saw it: the caller makes it relative),
    PayloadTooLarge (413) when the child runs out of its memory cap, Unprocessable (422) past the
    time cap, ValidationWorkerError (500) for anything else.
    """
    workdir.mkdir(parents=True, exist_ok=False)
    memory = settings.dataset_validation_memory_gib
    request = {
        "root": str(root),
        "format": format,
        "memory_bytes": int(memory * GIB) if memory is not None else None,
        "result": str(workdir / RESULT_FILE),
    }
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": _pythonpath()}
    timeout = settings.dataset_validation_timeout_seconds
    with (workdir / STDERR_FILE).open("wb") as stderr:
        try:
            completed = subprocess.run(
                [sys.executable, "-m", __name__, json.dumps(request)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=workdir,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise Unprocessable(
                f"validating the dataset took longer than {timeout:g} s (the limit)"
            ) from None
    result = _read_result(workdir / RESULT_FILE) or {}
    status = result.pop("status", None)
    if status == "ok":
        return ValidatedDataset(**result)
    if status == "format":
        raise DatasetFormatError(result["file"], result["line"], result["reason"])
    tail = _tail(workdir / STDERR_FILE)
    if status == "memory" or _died_of_memory(completed.returncode, tail):
        log.warning(
            "dataset validation ran out of its %s GiB (exit %s): %s",
            memory,
            completed.returncode,
            tail,
        )
        cap = f"{memory:g} GiB" if memory is not None else "the memory available"
        raise PayloadTooLarge(
            f"the dataset needs more than {cap} of memory to validate (the limit): "
            "upload a smaller dataset"
        )
    log.error("dataset validation failed (exit %s): %s", completed.returncode, tail)
    raise ValidationWorkerError(f"the validation worker failed (exit {completed.returncode})")


def _pythonpath() -> str:
    """The child imports this very `service` package, however the API found it."""
    here = str(Path(__file__).resolve().parents[2])
    current = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{current}" if current else here


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - STDERR_TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _died_of_memory(returncode: int, stderr: str) -> bool:
    """A child that could not even report: killed (OOM killer, a failed allocation in C code
    aborting or crashing) or dead of a MemoryError it could not catch."""
    crash = (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS)
    if returncode in tuple(-s for s in crash):
        return True
    return any(sign in stderr for sign in MEMORY_SIGNS)


def _validate(root: Path, format: str) -> dict[str, Any]:
    """The child's work: load, describe, keep only what the API stores."""
    from elmo_core.data import dataset_stats, load_dataset

    ds = load_dataset(root, format=format, empty_rows="keep")
    features = ds.train.features
    return {
        "status": "ok",
        "format": ds.format,
        "name": ds.name,
        "num_labels": int(ds.num_labels),
        "num_train": ds.train.num_points,
        "num_test": ds.test.num_points if ds.test is not None else 0,
        "num_features": int(features.shape[1]) if features is not None else None,
        "stats": dataset_stats(ds),
        "pid": os.getpid(),
    }


def main(argv: list[str]) -> int:
    """Entry of the child: `python -m service.core.dataset_validation REQUEST_JSON`."""
    request = json.loads(argv[0])
    import elmo_core.data  # noqa: F401  (the libraries load before the cap: it bounds the parse)

    limit = request["memory_bytes"]
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result: dict[str, Any]
    try:
        result = _validate(Path(request["root"]), request["format"])
    except DatasetFormatError as exc:
        result = {"status": "format", "file": exc.file, "line": exc.line, "reason": exc.reason}
    except MemoryError:
        result = {"status": "memory"}
    except Exception:  # reported to the API's log, never to the client
        traceback.print_exc()
        result = {"status": "error"}
    Path(request["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
