"""EmbeddingDropout: nn.Dropout's semantics (keep with probability 1 - p, scale by 1 / (1 - p),
identity in eval mode), checked statistically with fixed seeds."""

from __future__ import annotations

import math

import pytest
import torch

from elmo_core.encoders.dropout import EmbeddingDropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keeps_each_element_with_probability_one_minus_p_and_scales_it(p):
    torch.manual_seed(0)
    x = torch.randn(512, 1024)
    out = EmbeddingDropout(p).train()(x)
    kept = out != 0
    n = x.numel()
    share = float(kept.double().mean())
    assert abs(share - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    scale = torch.tensor(1.0).div_(1.0 - p)  # the mask's value, in the input's dtype
    torch.testing.assert_close(out[kept], x[kept] * scale, rtol=0, atol=0)
    # independent draws: the kept share of each column, too, is binomial around 1 - p
    columns = kept.double().mean(0)
    assert float(columns.std()) < 2 * math.sqrt(p * (1 - p) / x.shape[0])


def test_gradient_passes_the_kept_elements_scaled_and_stops_the_rest():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    out = EmbeddingDropout(0.3).train()(x)
    out.sum().backward()
    assert x.grad is not None
    kept = out.detach() != 0
    assert torch.equal(x.grad[kept], torch.ones_like(x.grad[kept]).div_(0.7))
    assert not bool(x.grad[~kept].any())


def test_identity_in_eval_mode_and_at_zero_and_the_seed_fixes_the_mask():
    x = torch.randn(8, 5)
    assert EmbeddingDropout(0.3).eval()(x) is x
    assert EmbeddingDropout(0.0).train()(x) is x
    drop = EmbeddingDropout(0.3).train()
    torch.manual_seed(7)
    first = drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), first)
    assert drop(x.to(torch.bfloat16)).dtype == torch.bfloat16
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout"):
            EmbeddingDropout(bad)
