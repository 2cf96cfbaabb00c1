"""Moving a batch's tensors to the device without stalling the host."""

from __future__ import annotations

import torch


def pin_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch in page-locked host memory (when CUDA is available), so that a copy to the GPU
    can run asynchronously; unchanged otherwise."""
    if not torch.cuda.is_available():
        return batch
    return {name: tensor.pin_memory() for name, tensor in batch.items()}


def batch_to_device(
    batch: dict[str, torch.Tensor], device: torch.device
) -> dict[str, torch.Tensor]:
    """The batch on `device`; host-to-GPU copies are asynchronous (from pinned memory when the
    batch was pinned), so the host queues work ahead of the GPU."""
    if device.type == "cpu":
        return batch
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
