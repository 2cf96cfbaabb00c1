"""Telemetry of a run: per-phase CUDA peaks per epoch, static sizes, host RSS, phase timings.

On CUDA each phase of a step (encoder forward, head step, encoder backward, optimizer step) resets
the allocator's peak counters on entry and reads them on exit (host-side counters: no
synchronisation); the epoch record keeps the maximum over its steps. Phase seconds need a
synchronisation, so they are measured on sampled steps only (`timed`) and the record says how
many. The run's other phases (featurizing, priors, evaluating, saving) are recorded once each by
`PhaseTimer`: seconds, host RSS at its end, process peak RSS and GPU peak.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import torch

STEP_PHASES = ("encoder_forward", "head_step", "encoder_backward", "optimizer_step")
TIMED_EVERY = 50
"""Steps between the steps whose phases are timed (a timing synchronises a CUDA device)."""


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (the peak where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_bytes()
    return pages * os.sysconf("SC_PAGE_SIZE")


def tensor_bytes(tensors: Iterator[torch.Tensor] | list[torch.Tensor]) -> int:
    """Total bytes of the given tensors."""
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor an optimizer keeps per parameter (moments, Kahan buffers)."""
    return tensor_bytes(
        v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)
    )


class MemoryTelemetry:
    """Collects the per-phase peaks of one epoch and turns them into records."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._peaks: dict[str, dict[str, float]] = {}
        self._epoch_start = time.time()

    def start_epoch(self) -> None:
        """Forget the previous epoch's peaks."""
        self._peaks = {}
        self._epoch_start = time.time()

    @contextlib.contextmanager
    def phase(self, name: str, timed: bool = False) -> Iterator[None]:
        """Track the block's peak allocated/reserved bytes (CUDA); with `timed`, also its
        seconds (synchronising the device on exit)."""
        peak = self._peaks.setdefault(name, {"seconds": 0.0, "timed_steps": 0})
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        yield
        if self.cuda:
            if timed:
                torch.cuda.synchronize(self.device)
            allocated = torch.cuda.max_memory_allocated(self.device)
            reserved = torch.cuda.max_memory_reserved(self.device)
            peak["peak_allocated"] = max(peak.get("peak_allocated", 0), int(allocated))
            peak["peak_reserved"] = max(peak.get("peak_reserved", 0), int(reserved))
        if timed:
            peak["seconds"] += time.perf_counter() - start
            peak["timed_steps"] += 1

    def epoch_record(self, epoch: int, step: int) -> dict:
        """The record of the finished epoch: phase peaks (CUDA), process peak RSS, timestamps."""
        return {
            "kind": "epoch",
            "epoch": epoch,
            "step": step,
            "device": str(self.device),
            "started_at": datetime.fromtimestamp(self._epoch_start, timezone.utc).isoformat(
                timespec="seconds"
            ),
            "finished_at": utc_now(),
            "seconds": round(time.time() - self._epoch_start, 3),
            "phases": {
                n: {k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()}
                for n, p in ((n, self._peaks.get(n)) for n in STEP_PHASES)
                if p is not None
            },
            "cpu_peak_rss": peak_rss_bytes(),
            "host_rss": current_rss_bytes(),
        }


def static_record(
    device: torch.device,
    head_state: dict[str, torch.Tensor],
    encoder: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> dict:
    """Sizes that do not change during training: head weights, Kahan buffers, encoder, optimizer."""
    kahan = head_state.get("compensation")
    return {
        "kind": "static",
        "device": str(device),
        "at": utc_now(),
        "head_weights": tensor_bytes([t for k, t in head_state.items() if k != "compensation"]),
        "kahan_buffers": 0 if kahan is None else tensor_bytes([kahan]),
        "encoder": tensor_bytes(list(encoder.parameters())),
        "optimizer_states": optimizer_state_bytes(optimizer),
    }


class PhaseTimer:
    """Records the run's non-step phases: seconds, host RSS at the end, process peak RSS, GPU
    peak allocated bytes; `on_record` receives each record as it closes."""

    def __init__(self, device: torch.device, on_record: Callable[[dict], None]) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.on_record = on_record

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[dict]:
        """Measure the block; the yielded dict may receive extra fields (counts, rates)."""
        extra: dict = {}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        yield extra
        if self.cuda:
            torch.cuda.synchronize(self.device)
        record = {
            "kind": "phase",
            "phase": name,
            "at": utc_now(),
            "seconds": round(time.perf_counter() - start, 3),
            "host_rss": current_rss_bytes(),
            "cpu_peak_rss": peak_rss_bytes(),
            **extra,
        }
        if self.cuda:
            record["gpu_peak_allocated"] = int(torch.cuda.max_memory_allocated(self.device))
        self.on_record(record)
