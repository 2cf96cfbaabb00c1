"""The screened step (``XMCHead(gradient_floor=f, screen_window=w)``, CPU backends): a step scores
only the labels with some ``|G| >= f`` in the last ``w`` steps, the batch's positives, the Kahan
rows and the below-floor draw. The batch is ``test_gradient_floor``'s: even labels far below 0
for every point (under the floor), odd labels near 0 (over it), label 4 a positive."""

from __future__ import annotations

import pytest
import torch
from test_gradient_floor import BACKENDS, FLOOR, D, L, _head, _setup, _skipped

from elmo_core.config import HeadConfig
from elmo_core.errors import ConfigError
from elmo_core.head import XMCHead, rounding
from elmo_core.head.reference import drawn_rows

RATE = 1 / 16


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp8", "bf16", "fp32"])
def test_a_fresh_screen_scores_every_label_and_ages_the_rows_under_the_floor(precision, backend):
    w, emb, rows, cols = _setup(1)
    screened = _head(precision, backend, FLOOR, w, below_floor_rate=RATE, screen_window=4)
    plain = _head(precision, backend, FLOOR, w, below_floor_rate=RATE)
    assert screened.screen is not None and not bool(screened.screen.any())
    de_s = screened.step(emb, rows, cols, 0.5)
    de_p = plain.step(emb, rows, cols, 0.5)
    assert torch.equal(screened.weight, plain.weight) and torch.equal(de_s, de_p)
    assert screened.screen.tolist() == _skipped().to(torch.uint8).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp8", "fp32"])
def test_rows_out_of_the_screen_are_scored_only_when_drawn(precision, backend):
    w, emb, rows, cols = _setup(2)
    screened = _head(precision, backend, FLOOR, w, below_floor_rate=RATE, screen_window=1)
    screened.step(emb, rows, cols, 0.5)
    full = _head(precision, backend, 0.0, w)  # the full step from here on
    full.load_state_dict({k: v.clone() for k, v in screened.state_dict().items()})
    assert torch.equal(full.weight, screened.weight)
    out = _skipped()  # aged 1: out of a window of 1 step
    assert torch.equal(screened.screen.bool(), out)
    # the even labels turn hot (about 0 for every point): only the drawn ones are scored
    hot = emb.clone()
    hot[:, 0] = 0.0
    before = screened.dequantized().double()
    seed = rounding.step_seed(screened.seed, screened.steps)
    drawn = drawn_rows(torch.arange(L), RATE, seed)
    screened.step(hot, rows, cols, 0.5)
    full.step(hot, rows, cols, 0.5)
    changed = (screened.dequantized().double() != before).any(1)
    scored_out = out & drawn
    assert bool(scored_out.any()) and bool((out & ~drawn).any())
    assert not bool(changed[out & ~drawn].any()), "an unscored row changed"
    assert bool(changed[scored_out].all())
    assert screened.screen[scored_out].tolist() == [0] * int(scored_out.sum())
    assert screened.screen[out & ~drawn].tolist() == [2] * int((out & ~drawn).sum())
    if precision == "fp32":  # a drawn row moves by 1 / rate x its full update
        step = screened.dequantized().double() - before
        full_step = full.dequantized().double() - before
        torch.testing.assert_close(
            step[scored_out], full_step[scored_out] / RATE, rtol=1e-4, atol=1e-6
        )


def test_the_screen_travels_in_the_state_dict():
    w, emb, rows, cols = _setup(3)
    head = _head("fp8", "cpu-bf16", FLOOR, w, below_floor_rate=RATE, screen_window=2)
    head.step(emb, rows, cols, 0.5)
    state = head.state_dict()
    assert torch.equal(state["screen"], _skipped().to(torch.uint8))
    other = _head("fp8", "cpu-bf16", FLOOR, w, below_floor_rate=RATE, screen_window=2)
    other.load_state_dict({k: v.clone() for k, v in state.items()})
    assert torch.equal(other.screen, head.screen)
    assert torch.equal(other.step(emb, rows, cols, 0.5), head.step(emb, rows, cols, 0.5))
    assert torch.equal(other.weight, head.weight)
    older = {k: v for k, v in state.items() if k != "screen"}  # a run saved before screens
    other.load_state_dict(older)
    assert not bool(other.screen.any())
    with pytest.raises(ValueError, match="screen"):
        other.load_state_dict({**older, "screen": torch.zeros(L + 1, dtype=torch.uint8)})


def test_no_screen_without_a_floor_and_bad_windows_are_refused():
    assert XMCHead(L, D, "fp8", screen_window=4).screen is None
    for bad in (-1, 256, 1.5):
        with pytest.raises(ConfigError, match="screen_window"):
            XMCHead(L, D, "fp8", gradient_floor=FLOOR, screen_window=bad)
    assert HeadConfig().screen_window == 4
    for bad in (-1, 256):
        with pytest.raises(ValueError, match="screen_window"):
            HeadConfig(screen_window=bad)
