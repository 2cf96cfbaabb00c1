"""elmo_core: the ELMO extreme multi-label classification library.

Data readers, the low-precision output head and its kernels, encoders, the trainer, inference and
metrics. No web or queue code lives here: the service (`service/`) and the workers (`worker/`)
drive this library.
"""

__version__ = "0.1.0"
