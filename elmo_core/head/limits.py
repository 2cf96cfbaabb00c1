"""The Triton kernels' limits and defaults, in a module that imports neither triton nor torch.

`triton_kernels.py` and the memory planner both read these, so the planner never copies them.
"""

MAX_BATCH = 256
"""The Triton step's largest batch: larger batches fall back to the reference backend."""
TRITON_CHUNK = 131072
"""Labels per chunk of the Triton step (its bf16 `G` buffer is chunk x B: 32 MiB at B=128)."""
MAX_SPLIT_K = 132
"""Upper bound of the update kernel's split-K partial buffers (one per SM of an H200)."""
REFERENCE_CHUNK = 65536
"""Labels per chunk the planner assumes for the reference backend when the config leaves it."""
