"""`plan_memory`: the predicted peak GPU memory of a run, part by part, before it starts.

The parts (bytes):
- head_weights: L x d in the storage dtype (1 byte fp8, 2 bf16, 4 fp32) + the Kahan permutation;
- kahan: round(head_ratio x L) x d in the Kahan dtype (low precision only);
- chunk_buffers: the head step's transient memory for one chunk of C labels. On CUDA with fp8/bf16
  storage and B <= 256 the Triton kernels hold a C x B bf16 `G` buffer (C = 131,072 by default)
  and an S x B x d fp32 split-K buffer (S <= 132, the H200's SM count); otherwise (fp32, larger
  batches) the reference's `bytes_per_label(d, B) x C` with C = 65,536. Plus the B x d fp32
  embedding and dE;
- encoder: its parameters (bf16 unless the run is fp32) and their gradients (dense, same size);
- optimizer: AdamW's two moments per parameter, plus the Kahan buffer in pure BF16, plus a
  transient of 2 bytes per element of the largest parameter during the step (calibrated on the
  H200: without it the plan was 14% under the measured peak of a 276k x 512 TF-IDF table);
- activations: sparse encoder: B x d per layer; transformer: B x S x h x (34 + 5 a S / h) bytes per
  layer at 2 bytes (Korthikanti et al. 2022), doubled for fp32;
- framework: CUDA context, cuBLAS workspace and allocator slack, a fixed 768 MiB.
These are estimates: the CUDA caching allocator rounds and fragments; docs/training.md compares the
prediction with measured peaks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from elmo_core.config import TrainConfig
from elmo_core.head.limits import MAX_BATCH, MAX_SPLIT_K, REFERENCE_CHUNK, TRITON_CHUNK
from elmo_core.head.reference import bytes_per_label
from elmo_core.precision import KAHAN_BYTES, STORAGE_BYTES, is_low_precision

FRAMEWORK_BYTES = 768 << 20
TRANSFORMER_FALLBACK = {
    "params": 22_713_216,
    "largest": 11_720_448,
    "layers": 6,
    "hidden": 384,
    "heads": 12,
}
"""all-MiniLM-L6-v2's shape, used when a transformer's config cannot be read."""


@dataclass
class MemoryPlan:
    """Predicted bytes per part of a run; `fits(gpu_bytes)` compares the total."""

    head_weights: int
    kahan: int
    chunk_buffers: int
    encoder: int
    optimizer: int
    activations: int
    framework: int
    chunk_size: int

    @property
    def total_bytes(self) -> int:
        """Sum of all parts."""
        return (
            self.head_weights
            + self.kahan
            + self.chunk_buffers
            + self.encoder
            + self.optimizer
            + self.activations
            + self.framework
        )

    def fits(self, gpu_bytes: int) -> bool:
        """True if the predicted peak is at most `gpu_bytes`."""
        return self.total_bytes <= gpu_bytes

    def to_dict(self) -> dict:
        """The parts and the total as a JSON-able dict."""
        return {**asdict(self), "total_bytes": self.total_bytes}


def plan_memory(
    config: TrainConfig, num_labels: int, num_features: int | None = None
) -> MemoryPlan:
    """Predict the peak GPU memory of training `config` on `num_labels` labels: each member's
    head, encoder, optimizer states and activations (`TrainConfig.members`, 1 on a GPU unless
    set), one step's buffers at a time.

    `num_features`: the sparse encoder's input width (vocabulary or hash buckets, or the dataset's
    feature count); if None it is taken from the config (max_features or num_buckets).
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    config, _ = config.for_device("cuda")
    assert config.batch_size is not None and config.members is not None
    enc = config.encoder
    batch = config.batch_size
    low = is_low_precision(config.precision)
    param_bytes = 2 if low else 4
    if enc.is_sparse:
        if num_features is None:
            tf = enc.tfidf
            num_features = tf.max_features if tf.mode == "vocab" else tf.num_buckets
        dim = enc.dim + (1 if enc.bias_feature else 0)
        params = num_features * enc.dim + enc.mlp_layers * (enc.dim * enc.dim + enc.dim)
        largest = num_features * enc.dim
        activations = batch * dim * 4 * (2 + 2 * enc.mlp_layers)
    else:
        shape = transformer_shape(enc.name)
        dim = shape["hidden"] + (1 if enc.bias_feature else 0)
        params = shape["params"]
        largest = shape["largest"]
        seq = enc.max_length
        per_layer = batch * seq * dim * (34 + 5 * shape["heads"] * seq / dim)
        activations = int(shape["layers"] * per_layer * (1 if low else 2))
    triton = low and batch <= MAX_BATCH
    chunk = config.head.chunk_size
    if not isinstance(chunk, int):
        chunk = TRITON_CHUNK if triton else REFERENCE_CHUNK
    chunk = min(num_labels, chunk)
    if triton:
        transient = chunk * batch * 2 + MAX_SPLIT_K * batch * dim * 4
    else:
        transient = chunk * bytes_per_label(dim, batch, low)
    kahan_rows = round(config.head.head_ratio * num_labels) if low else 0
    members = config.members
    return MemoryPlan(
        head_weights=members
        * (
            num_labels * dim * STORAGE_BYTES[config.precision]
            + (8 * 2 * num_labels if kahan_rows else 0)
        ),
        kahan=members * kahan_rows * dim * KAHAN_BYTES[config.head.kahan_dtype],
        chunk_buffers=transient + 2 * batch * dim * 4,
        encoder=members * 2 * params * param_bytes,
        optimizer=members * params * param_bytes * (3 if low else 2) + 2 * largest,
        activations=int(members * activations),
        framework=FRAMEWORK_BYTES,
        chunk_size=chunk,
    )


def transformer_shape(name: str) -> dict[str, int]:
    """Parameter count, layers, hidden size and heads of a local transformer, without weights."""
    try:
        import torch
        from transformers import AutoConfig, AutoModel

        from elmo_core.encoders import resolve_model_dir

        cfg = AutoConfig.from_pretrained(str(resolve_model_dir(name)), local_files_only=True)
        with torch.device("meta"):
            model = AutoModel.from_config(cfg)
        return {
            "params": sum(p.numel() for p in model.parameters()),
            "largest": max(p.numel() for p in model.parameters()),
            "layers": int(cfg.num_hidden_layers),
            "hidden": int(cfg.hidden_size),
            "heads": int(cfg.num_attention_heads),
        }
    except (ImportError, OSError, ValueError, AttributeError):
        return dict(TRANSFORMER_FALLBACK)
