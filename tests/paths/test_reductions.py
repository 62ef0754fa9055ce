"""Path reductions: the default soft-max is a near-maximum at any loss scale, its weights written
out by hand; its docstring example runs."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from topograph.errors import UsageError
from topograph.paths import fourier, path_reduction

D = torch.float64


def _bump_losses(scale=0.01, shift=0.0, m=50):
    """Losses along a path with one barrier: ≈0.01 at the ends, a bump of 0.004 at t = 0.5."""
    t = torch.linspace(0, 1, m, dtype=D)
    return shift + scale * (1.0 + 0.4 * torch.exp(-((t - 0.5) / 0.1) ** 2))


def _weights_and_value(reduce, losses):
    l = losses.clone().requires_grad_(True)
    value = reduce(l)
    (w,) = torch.autograd.grad(value, l)
    return w, float(value.detach())


def test_softmax_objective_is_a_near_max_at_digits_scale():
    """On a path whose losses are ~0.01 the default soft-max weights the highest point far above
    the mean and its value is within a few percent of the maximum (a fixed τ = 0.1 in loss
    units, the former default, weights every point almost equally: the mean loss)."""
    losses = _bump_losses()
    m, top = losses.numel(), float(losses.max())
    w, value = _weights_and_value(path_reduction("softmax"), losses)
    # the reference: the weights written out, τ = 0.05 × spread, 0.9 soft-max + 0.1 mean
    tau = 0.05 * float(losses.max() - losses.min())
    e = np.exp((losses.numpy() - top) / tau)
    expected = 0.9 * e / e.sum() + 0.1 / m
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-10)
    assert float(w.sum()) == pytest.approx(1.0)
    assert float(w.max()) >= 10 * float(w.mean()) and int(w.argmax()) == int(losses.argmax())
    assert abs(value - top) <= 0.03 * top
    # the former absolute temperature: near-uniform weights, a value far from the maximum
    old = lambda l: 0.1 * torch.logsumexp(l / 0.1, 0) + 0.1 * l.mean()  # noqa: E731
    w_old, v_old = _weights_and_value(old, losses)
    assert float(w_old.max()) < 1.1 * float(w_old.mean()) and v_old > 10 * top


def test_softmax_weights_do_not_depend_on_loss_scale_or_shift():
    soft = path_reduction("softmax", temperature=0.1, mean_weight=0.2)
    w1, v1 = _weights_and_value(soft, _bump_losses(scale=0.01))
    w2, v2 = _weights_and_value(soft, _bump_losses(scale=250.0, shift=-40.0))
    torch.testing.assert_close(w1, w2)
    assert v2 == pytest.approx(250.0 / 0.01 * v1 - 40.0, rel=1e-9)
    flat = torch.full((7,), 0.3, dtype=D)  # no spread: the value is the loss, the weights equal
    w, v = _weights_and_value(soft, flat)
    assert v == pytest.approx(0.3, rel=1e-12) and torch.allclose(w, torch.full_like(w, 1 / 7))
    with pytest.raises(UsageError, match="temperature"):
        path_reduction("softmax", temperature=0.0)
    with pytest.raises(UsageError, match="mean_weight"):
        path_reduction("softmax", mean_weight=1.0)


def test_path_reduction_docstring_example_runs():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(fourier.path_reduction, "path_reduction", globs={}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
