"""CUDA-graph replay of the encoder's training step equals the eager step (GPU only, except the
shape bookkeeping)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from elmo_core.encoders import TransformerEncoder
from elmo_core.training.graphed_forward import GraphedTrainForward, padded_widths

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


def _step(forward, encoder: nn.Module, batch: dict, upstream: torch.Tensor):
    encoder.zero_grad(set_to_none=True)
    out = forward(batch)
    out.backward(upstream)
    params = encoder.named_parameters()
    grads = {n: p.grad.detach().clone() for n, p in params if p.grad is not None}
    return out.detach().clone(), grads


@cuda
def test_graph_replay_equals_the_eager_step_in_float32(tiny_bert_dir):
    encoder = _encoder(tiny_bert_dir, dropout=0.0)
    logs: list[str] = []
    graphs = GraphedTrainForward(encoder, 4, torch.device("cuda"), logs.append)
    graphs.prepare([16])
    assert (4, 16) in graphs.graphs and not graphs.disabled, logs
    for seed in range(3):  # new inputs each time: the graph's static inputs are refreshed
        batch = _batch(seed, 16)
        upstream = torch.randn(4, encoder.dim, generator=torch.Generator().manual_seed(seed))
        upstream = upstream.cuda()
        eager_out, eager_grads = _step(encoder, encoder, batch, upstream)
        graph_out, graph_grads = _step(graphs, encoder, batch, upstream)
        torch.testing.assert_close(graph_out, eager_out, rtol=1e-5, atol=1e-6)
        assert graph_grads.keys() == eager_grads.keys()
        for name, grad in eager_grads.items():
            torch.testing.assert_close(graph_grads[name], grad, rtol=1e-4, atol=1e-6)


@cuda
def test_uncaptured_shapes_run_eagerly(tiny_bert_dir):
    encoder = _encoder(tiny_bert_dir, dropout=0.0)
    graphs = GraphedTrainForward(encoder, 4, torch.device("cuda"), print)
    graphs.prepare([16])
    batch = _batch(0, 32, batch=3)  # neither the batch size nor the width was captured
    upstream = torch.randn(3, encoder.dim, device="cuda")
    eager_out, eager_grads = _step(encoder, encoder, batch, upstream)
    out, grads = _step(graphs, encoder, batch, upstream)
    torch.testing.assert_close(out, eager_out)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad)


@cuda
def test_dropout_draws_fresh_masks_at_every_replay(tiny_bert_dir):
    encoder = _encoder(tiny_bert_dir, dropout=0.5)
    graphs = GraphedTrainForward(encoder, 4, torch.device("cuda"), print)
    graphs.prepare([16])
    batch = _batch(0, 16)
    outs = [graphs(batch).detach().clone() for _ in range(4)]
    for earlier, later in itertools.pairwise(outs):
        assert not torch.equal(earlier, later)  # a frozen mask would replay identical outputs
    kept = torch.stack(outs)[..., :-1] != 0  # the bias column is not dropped
    assert 0.3 < kept.float().mean().item() < 0.7  # about half kept at p = 0.5
