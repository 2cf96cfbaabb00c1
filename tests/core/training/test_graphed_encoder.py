"""CUDA-graph replay of the encoder's training step equals the eager step: the embedding and every
parameter's gradient, written into `.grad` (GPU only, except the shape bookkeeping)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from elmo_core.encoders import TransformerEncoder
from elmo_core.training.graphed_encoder import GraphedEncoderStep, padded_widths

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_padded_widths_are_those_of_full_batches_only():
    lengths = np.array([3, 17, 5, 40, 2, 9, 33])
    batches = [np.array([0, 2]), np.array([1, 5]), np.array([3, 6]), np.array([4])]
    assert padded_widths(lengths, batches, 2, 16) == {16, 32, 48}
    assert padded_widths(lengths, batches, 2, 8) == {8, 24, 40}


def _encoder(path, dropout: float) -> TransformerEncoder:
    encoder = TransformerEncoder.from_directory(path, max_length=32, bias_feature=1.0)
    for module in encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = dropout
    return encoder.to("cuda").train()


def _batch(seed: int, width: int, batch: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 12, (batch, width), generator=gen)
    lengths = torch.randint(1, width + 1, (batch,), generator=gen)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return {"input_ids": (ids * mask).cuda(), "attention_mask": mask.cuda()}


def _grads(encoder: nn.Module) -> dict[str, torch.Tensor]:
    params = encoder.named_parameters()
    return {n: p.grad.detach().clone() for n, p in params if p.grad is not None}


def _eager_step(encoder: nn.Module, batch: dict, upstream: torch.Tensor):
    encoder.zero_grad(set_to_none=True)
    out = encoder(batch)
    out.backward(upstream)
    return out.detach().clone(), _grads(encoder)


def _graphed_step(step: GraphedEncoderStep, encoder: nn.Module, batch: dict, upstream):
    out = step(batch).detach().clone()
    step.backward(upstream.float())  # the head's gradient is float32
    return out, _grads(encoder)


def _assert_same(graphed, eager, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    torch.testing.assert_close(graphed[0], eager[0], rtol=rtol, atol=atol)
    assert graphed[1].keys() == eager[1].keys()
    for name, grad in eager[1].items():
        torch.testing.assert_close(graphed[1][name], grad, rtol=rtol, atol=atol)


def _upstream(seed: int, rows: int, dim: int) -> torch.Tensor:
    return torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)).cuda()


@cuda
@pytest.mark.parametrize(
    ("captured", "widths"),
    [([16], [16, 16, 16]), ([32, 16], [32, 16, 16, 32, 16])],  # the second: pool shared
)
def test_graph_replay_equals_the_eager_step_in_float32(tiny_bert_dir, captured, widths):
    encoder = _encoder(tiny_bert_dir, dropout=0.0)
    logs: list[str] = []
    step = GraphedEncoderStep(encoder, 4, torch.device("cuda"), logs.append)
    step.prepare(captured)
    assert set(step.graphs) == {(4, w) for w in captured} and not step.disabled, logs
    for seed, width in enumerate(widths):  # new inputs each time, shapes in any order
        batch = _batch(seed, width)
        upstream = _upstream(seed, 4, encoder.dim)
        eager = _eager_step(encoder, batch, upstream)
        # .grad holds this step's gradient, not a sum over the replays
        _assert_same(_graphed_step(step, encoder, batch, upstream), eager)


@cuda
def test_uncaptured_shapes_run_eagerly(tiny_bert_dir):
    encoder = _encoder(tiny_bert_dir, dropout=0.0)
    step = GraphedEncoderStep(encoder, 4, torch.device("cuda"), print)
    step.prepare([16])
    batch = _batch(0, 32, batch=3)  # neither the batch size nor the width was captured
    upstream = _upstream(0, 3, encoder.dim)
    eager = _eager_step(encoder, batch, upstream)
    _graphed_step(step, encoder, _batch(1, 16), _upstream(1, 4, encoder.dim))  # stale grads
    _assert_same(_graphed_step(step, encoder, batch, upstream), eager, rtol=1e-5, atol=1e-7)


@cuda
def test_an_optimizer_trains_the_same_weights_through_the_graphs(tiny_bert_dir):
    eager_encoder = _encoder(tiny_bert_dir, dropout=0.0)
    graphed_encoder = _encoder(tiny_bert_dir, dropout=0.0)
    step = GraphedEncoderStep(graphed_encoder, 4, torch.device("cuda"), print)
    step.prepare([16])
    eager_opt = torch.optim.AdamW(eager_encoder.parameters(), lr=1e-3)
    graphed_opt = torch.optim.AdamW(graphed_encoder.parameters(), lr=1e-3)
    for seed in range(4):
        batch, upstream = _batch(seed, 16), _upstream(seed, 4, eager_encoder.dim)
        _eager_step(eager_encoder, batch, upstream)
        eager_opt.step()
        _graphed_step(step, graphed_encoder, batch, upstream)
        graphed_opt.step()  # the gradients are not set to None: the graphs own them
    pairs = zip(eager_encoder.named_parameters(), graphed_encoder.parameters(), strict=True)
    moved = 0
    for (name, eager_p), graphed_p in pairs:
        torch.testing.assert_close(graphed_p, eager_p, rtol=1e-4, atol=1e-5, msg=name)
        moved += int(eager_p.grad is not None)
    assert moved > 0
    pooler = [n for n, p in graphed_encoder.named_parameters() if p.grad is None]
    assert pooler == [n for n, p in eager_encoder.named_parameters() if p.grad is None]


@cuda
def test_dropout_draws_fresh_masks_at_every_replay(tiny_bert_dir):
    encoder = _encoder(tiny_bert_dir, dropout=0.5)
    step = GraphedEncoderStep(encoder, 4, torch.device("cuda"), print)
    step.prepare([16])
    batch = _batch(0, 16)
    outs = []
    for _ in range(4):
        outs.append(step(batch).detach().clone())
        step.backward(torch.zeros(4, encoder.dim, device="cuda"))
    for earlier, later in itertools.pairwise(outs):
        assert not torch.equal(earlier, later)  # a frozen mask would replay identical outputs
    kept = torch.stack(outs)[..., :-1] != 0  # the bias column is not dropped
    assert 0.3 < kept.float().mean().item() < 0.7  # about half kept at p = 0.5


def test_backward_without_a_forward_is_an_error():
    step = GraphedEncoderStep.__new__(GraphedEncoderStep)
    step._pending = None
    with pytest.raises(RuntimeError, match="backward without a forward"):
        step.backward(torch.zeros(1, 1))
