"""Sparse encoder: EmbeddingBag equals the dense product; features are L2-normalised."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.encoders import SparseEncoder
from elmo_core.text_features import TfidfFeaturizer


def test_forward_equals_dense_product():
    torch.manual_seed(0)
    texts = ["alpha beta gamma", "beta delta", "gamma gamma alpha"]
    featurizer = TfidfFeaturizer(min_df=1).fit(texts)
    encoder = SparseEncoder(featurizer.num_features, 16, featurizer=featurizer).double()
    prepared = encoder.featurize(texts, None)
    out = encoder(encoder.make_batch(prepared, np.array([2, 0]), torch.device("cpu")))
    dense = torch.from_numpy(prepared[[2, 0]].toarray()).double()
    expected = dense @ encoder.embedding.weight
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_features_path_normalises_and_mlp_starts_as_identity():
    features = sp.csr_matrix(np.array([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0]], dtype=np.float32))
    encoder = SparseEncoder(3, 8, mlp_layers=1)
    prepared = encoder.featurize(None, features)
    np.testing.assert_allclose(prepared.toarray(), [[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]], rtol=1e-6)
    out = encoder(encoder.make_batch(prepared, np.array([0, 1]), torch.device("cpu")))
    expected = torch.from_numpy(prepared.toarray()) @ encoder.embedding.weight
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_bf16_gradient_reaches_the_table():
    encoder = SparseEncoder(5, 4).to(torch.bfloat16)
    prepared = encoder.featurize(None, sp.csr_matrix(np.eye(5, dtype=np.float32)))
    out = encoder(encoder.make_batch(prepared, np.array([1, 3]), torch.device("cpu")))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    grad = encoder.embedding.weight.grad.float()
    assert torch.all(grad[[1, 3]] == 1.0) and torch.all(grad[[0, 2, 4]] == 0.0)


def test_a_model_saved_before_bias_columns_loads_with_one(tmp_path):
    from elmo_core.config import EncoderConfig
    from elmo_core.encoders import load_encoder

    config = EncoderConfig(name="features", dim=4)
    old_meta = {"kind": "sparse", "num_features": 5, "dim": 4}  # no "bias_columns" key
    encoder = load_encoder(config, old_meta, tmp_path)
    assert encoder.bias_columns == 1 and encoder.dim == 5
    assert encoder.save(tmp_path) == {**old_meta, "bias_columns": 1}
