"""Barriers and path finders on analytic landscapes with known answers (the paper's four-Gaussian
toy of Fig. 3, double wells, Müller–Brown): stationary points located here by Newton's method on
autograd derivatives; no continuous path stays below the saddle; bad input is one line."""

from __future__ import annotations

import pytest
import torch

from topograph.core import FunctionObjective
from topograph.data.analytic import get_landscape
from topograph.errors import UsageError
from topograph.paths import (
    CurveFinder,
    FourierPath,
    FourierPathFinder,
    NEBPathFinder,
    linear_barrier,
    profile_path,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny problems
D = torch.float64


def toy(w):  # arXiv:2602.21276 Fig. 3 (C = 1.0190055296306975 as in the toy notebook)
    x, y = w[..., 0], w[..., 1]

    def g(cx, cy, a):
        return torch.exp(-a * ((x - cx) ** 2 + (y - cy) ** 2))

    return -g(-0.5, -0.5, 3) - g(0.5, 0.0, 3) + g(-0.2, -0.4, 15) + g(0.0, 0.3, 15) + 1.0190055296306975


def newton_stationary(f, x0, iters=50):
    """A stationary point of f near x0 by Newton's method on autograd derivatives."""
    x = torch.tensor(x0, dtype=D)
    for _ in range(iters):
        g = torch.autograd.functional.jacobian(f, x)
        h = torch.autograd.functional.hessian(f, x)
        x = x - torch.linalg.solve(h, g)
    return x, float(f(x))


@pytest.fixture(scope="module")
def toy_setup():
    f = get_landscape("four-gaussian-toy").f
    saddle, h_saddle = newton_stationary(f, [-0.1647, -0.0699])
    eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, saddle))
    assert eig[0] < 0 < eig[1]  # an index-1 saddle
    a = torch.tensor([-0.62, -0.54], dtype=D)  # the paper's endpoints
    b = torch.tensor([0.49, -0.02], dtype=D)
    return FunctionObjective(f, 2), a, b, h_saddle


@pytest.fixture(scope="module")
def mb_setup():
    f = get_landscape("muller-brown").f
    a, va = newton_stationary(f, [-0.558, 1.442])
    b, _ = newton_stationary(f, [0.623, 0.028])
    _, v_saddle = newton_stationary(f, [-0.822, 0.624])
    scaled = FunctionObjective(lambda w: (f(w) - va) / 100.0, 2)  # heights in hundredths
    return scaled, a, b, va, v_saddle


def test_toy_straight_line_height(toy_setup):
    obj, a, b, _ = toy_setup
    r = linear_barrier(obj, a, b, points=1001)
    assert abs(r.height - 1.102) <= 1e-3
    assert r.barrier == pytest.approx(r.height - max(float(toy(a)), float(toy(b))))
    assert 0.2 < r.argmax_t < 0.8 and r.batchnorm is None


@pytest.mark.slow
@pytest.mark.parametrize("kind,low,high", [("softmax", 0.0, 0.63), ("squared", 0.64, 0.66), ("sum", 0.66, 0.74)])
def test_toy_fourier_reductions(toy_setup, kind, low, high):
    obj, a, b, h_saddle = toy_setup
    finder = FourierPathFinder(points=100, reduction=kind, steps=500, lr=0.01, reg=0.1, temperature=0.03,
                               progress=False)
    r = finder.find(obj, a, b)
    assert len(r.t) == finder.dense_points or len(r.t) == 10 * 99 + 1
    assert r.height >= h_saddle - 1e-9  # no continuous path from A to B stays below the saddle
    assert low <= r.height <= high
    ends = r.path.points([0.0, 1.0])  # endpoints never moved
    assert torch.equal(ends[0], a) and torch.equal(ends[1], b)


def test_toy_neb_finds_the_saddle(toy_setup):
    obj, a, b, h_saddle = toy_setup
    r = NEBPathFinder(images=20, steps=400, lr=0.01, progress=False).find(obj, a, b)
    assert h_saddle - 1e-6 <= r.height <= h_saddle + 2e-3


def test_toy_bezier_stays_above_the_saddle(toy_setup):
    obj, a, b, h_saddle = toy_setup
    r = CurveFinder(curve="bezier", steps=300, lr=0.01, progress=False).find(obj, a, b)
    assert h_saddle <= r.height < 1.1024  # one bend barely helps here


def test_double_well_height_is_one():
    f = get_landscape("double-well").f
    obj = FunctionObjective(f, 2)
    a, b = torch.tensor([-1.0, 0.0], dtype=D), torch.tensor([1.0, 0.0], dtype=D)
    r = FourierPathFinder(points=51, steps=100, lr=0.01, reg=0.01, progress=False).find(obj, a, b)
    assert r.height == pytest.approx(1.0, abs=0.01)
    curved = FunctionObjective(get_landscape("curved-double-well").f, 2)
    straight = linear_barrier(curved, a, b, points=1001)
    assert straight.height == pytest.approx(2.28, abs=0.01)
    found = FourierPathFinder(points=51, steps=400, lr=0.02, reg=0.01, temperature=0.03,
                              progress=False).find(curved, a, b)
    assert 1.0 - 1e-9 <= found.height <= 1.01


@pytest.mark.slow
def test_muller_brown_neb_oracle_and_fourier_objectives(mb_setup):
    obj, a, b, va, v_saddle = mb_setup
    assert v_saddle == pytest.approx(-40.66, abs=0.01)
    to_v = lambda h: h * 100.0 + va  # noqa: E731
    neb = NEBPathFinder(images=20, steps=400, lr=0.01, progress=False).find(obj, a, b)
    assert abs(to_v(neb.height) - (-40.66)) <= 0.5
    soft = FourierPathFinder(points=100, steps=1000, lr=0.01, reg=0.1, temperature=0.03,
                             progress=False).find(obj, a, b)
    assert v_saddle - 1e-6 <= to_v(soft.height) <= -40.0
    flat = FourierPathFinder(points=100, reduction="sum", steps=1000, lr=0.01, reg=0.1,
                             progress=False).find(obj, a, b)
    assert to_v(flat.height) > -30.0  # documented limitation of the paper's Eq. 4


def test_bad_input_is_one_line_usage_error(toy_setup):
    obj, a, b, _ = toy_setup
    with pytest.raises(UsageError, match="reduction"):
        FourierPathFinder(reduction="max").find(obj, a, b)
    with pytest.raises(UsageError, match="start has 3 parameters"):
        linear_barrier(obj, torch.zeros(3), b)
    with pytest.raises(UsageError, match="batchnorm"):
        profile_path(obj, FourierPath(a, b), 5, batchnorm="sometimes")
