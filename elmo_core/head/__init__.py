"""The low-precision XMC output layer (DESIGN.md sections 1-4, ``docs/head.md``).

``XMCHead`` is the public class; ``rounding`` holds the stochastic rounding, ``reference`` the
plain-PyTorch maths, ``backend`` the interface the Triton kernels (``triton_backend``,
``triton_kernels``, imported only on CUDA) implement; ``members`` trains several heads scored as
one. Imports torch only.
"""

from elmo_core.head.backend import HeadBackend, HeadInputError
from elmo_core.head.head import XMCHead, select_backend, storage_scale
from elmo_core.head.members import MemberHeads
from elmo_core.head.reference import ReferenceBackend
from elmo_core.head.rounding import round_nearest, step_seed, stochastic_round

TrainingHead = XMCHead | MemberHeads
"""What a run trains: a head, or the members' heads (saved merged: `MemberHeads.merged`)."""

__all__ = [
    "HeadBackend",
    "HeadInputError",
    "MemberHeads",
    "ReferenceBackend",
    "TrainingHead",
    "XMCHead",
    "round_nearest",
    "select_backend",
    "step_seed",
    "stochastic_round",
    "storage_scale",
]
