"""Member encoders: the merged layout, and one `SparseEncoder` that computes it after a save."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elmo_core.config import EncoderConfig
from elmo_core.encoders import MemberEncoders, build_sparse_encoder, load_encoder
from elmo_core.text_features import TfidfFeaturizer

TEXTS = ["alpha beta gamma", "beta delta", "gamma gamma alpha", "delta epsilon beta"]


def _members(count: int = 2, **encoder) -> tuple[MemberEncoders, EncoderConfig]:
    torch.manual_seed(0)
    config = EncoderConfig(dim=6, dropout=0.5, **encoder)
    featurizer = TfidfFeaturizer(min_df=1).fit(TEXTS)
    first = build_sparse_encoder(config, featurizer.num_features, featurizer)
    return MemberEncoders(config, first, count, list(range(count))).double(), config


def _embed(encoder, rows=(0, 1, 2, 3)) -> torch.Tensor:
    prepared = encoder.featurize(TEXTS, None)
    return encoder(encoder.make_batch(prepared, np.array(rows), torch.device("cpu")))


def test_the_layout_is_member_blocks_then_one_bias_column_each():
    members, _ = _members(count=3)
    members.eval()
    out = _embed(members)
    assert out.shape == (4, 3 * 6 + 3) and members.dim == 21
    dense = torch.from_numpy(members.featurize(TEXTS, None).toarray()).double()
    for m, table in enumerate(members.tables()):
        columns = members.member_columns(m)
        assert columns.tolist() == [*range(6 * m, 6 * m + 6), 18 + m]
        torch.testing.assert_close(out[:, columns[:-1]], dense @ table, rtol=1e-12, atol=1e-12)
        assert torch.equal(out[:, columns[-1]], torch.ones(4, dtype=torch.float64))


def test_members_start_apart_and_draw_their_own_dropout():
    members, _ = _members()
    first, second = members.tables()
    assert not torch.equal(first, second)
    members.train()
    out = _embed(members)
    dropped = [(out[:, members.member_columns(m)[:-1]] == 0) for m in (0, 1)]
    assert not torch.equal(dropped[0], dropped[1])


def test_each_member_draws_its_dropout_from_its_own_seeded_generator():
    members, _ = _members()  # dropout seeds 0 and 1
    members.train()
    torch.manual_seed(123)  # torch's default generator plays no part
    out = _embed(members)
    for m in (0, 1):
        draws = torch.rand((4, 6), generator=torch.Generator().manual_seed(m))
        assert torch.equal(out[:, members.member_columns(m)[:-1]] == 0, draws < 0.5)
    assert sorted(members.generators()) == ["member0", "member1"]


def test_the_merged_encoder_saves_and_loads_to_the_same_embeddings(tmp_path):
    members, config = _members()
    members.eval()
    merged = members.merged().eval()
    expected = _embed(members)
    assert torch.equal(_embed(merged), expected)
    meta = merged.save(tmp_path)
    assert meta == {"kind": "sparse", "num_features": members.num_features, "dim": 12,
                    "bias_columns": 2}  # fmt: skip
    loaded = load_encoder(config, json.loads(json.dumps(meta)), tmp_path).double()
    loaded.load_state_dict(merged.state_dict())
    assert torch.equal(_embed(loaded.eval()), expected)


def test_members_need_a_plain_sparse_encoder():
    with pytest.raises(ValueError, match="without MLP layers"):
        _members(mlp_layers=1)
