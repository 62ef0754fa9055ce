"""Analytic landscapes: every listed stationary point is re-verified here.

References are independent of the stored numbers: autograd gradients and dense Hessians
(``torch.autograd.functional.hessian``), scipy's own minimisers and root finders started
near each point, numpy's cubic roots and scipy's brentq for the separable cases, gradient
flow out of each saddle, and the published values (Müller & Brown 1979).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import scipy.optimize as so
import torch
from scipy.integrate import solve_ivp

from topograph.core import FunctionObjective
from topograph.data.analytic import LANDSCAPES, AnalyticLandscape, CriticalPoint, get_landscape
from topograph.errors import UsageError

NEGATIVE_EIGENVALUES = {"minimum": 0, "saddle": 1, "maximum": 2}

POINTS = [
    pytest.param(ls, cp, id=f"{name}:{cp.kind}:{cp.label}")
    for name, ls in LANDSCAPES.items()
    for cp in ls.critical_points
]


def grad_and_hessian(ls: AnalyticLandscape, point) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ls.f(x), x)
    h = torch.autograd.functional.hessian(ls.f, x.detach())
    return g, h


def value_and_grad_np(ls: AnalyticLandscape, sign: float = 1.0):
    def fun(z):
        x = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        v = ls.f(x)
        (g,) = torch.autograd.grad(v, x)
        return sign * v.item(), sign * g.numpy()

    return fun


@pytest.mark.parametrize(("ls", "cp"), POINTS)
def test_critical_point_is_stationary_with_right_signature_and_value(ls, cp):
    g, h = grad_and_hessian(ls, cp.point)
    eig = torch.linalg.eigvalsh(h)
    scale = max(1.0, eig.abs().max().item())
    assert g.norm().item() <= 1e-8 * scale, (g, scale)
    assert int((eig < 0).sum()) == NEGATIVE_EIGENVALUES[cp.kind], eig
    assert eig.abs().min().item() > 1e-6 * scale, eig  # non-degenerate
    value = ls.f(torch.tensor(cp.point, dtype=torch.float64)).item()
    assert value == pytest.approx(cp.value, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("ls", "cp"), POINTS)
def test_scipy_started_nearby_finds_the_listed_point(ls, cp):
    rng = np.random.default_rng(zlib.crc32(f"{ls.name}:{cp.label}".encode()))
    start = np.asarray(cp.point) + 0.02 * rng.standard_normal(ls.dim)
    if cp.kind == "saddle":  # a root of the gradient (Newton-type, hybrid Powell)
        grad_fn = value_and_grad_np(ls)
        found = so.root(lambda z: grad_fn(z)[1], start, tol=1e-14).x
    else:  # minimise f (minima) or −f (maxima) with Newton-CG
        sign = 1.0 if cp.kind == "minimum" else -1.0
        hess = lambda z: sign * torch.autograd.functional.hessian(ls.f, torch.tensor(z)).numpy()  # noqa: E731
        res = so.minimize(value_and_grad_np(ls, sign), start, jac=True, hess=hess,
                          method="Newton-CG", options={"xtol": 1e-12})
        found = res.x
    np.testing.assert_allclose(found, cp.point, atol=1e-6)


def _gradient_flow(ls: AnalyticLandscape, starts: torch.Tensor) -> torch.Tensor:
    """Endpoints of the gradient flow dx/dt = −∇f(x) from a batch of starts (scipy LSODA,
    integrated for 30 time constants of the slowest listed curvature)."""
    eigs = torch.cat([torch.linalg.eigvalsh(grad_and_hessian(ls, cp.point)[1]).abs()
                      for cp in ls.critical_points])
    shape = starts.shape

    def rhs(_t, z):
        x = torch.tensor(z, dtype=torch.float64).reshape(shape).requires_grad_(True)
        (g,) = torch.autograd.grad(ls.f(x).sum(), x)
        return -g.numpy().ravel()

    sol = solve_ivp(rhs, (0.0, 30.0 / eigs.min().item()), starts.numpy().ravel(),
                    method="LSODA", rtol=1e-8, atol=1e-10)
    assert sol.success, sol.message
    return torch.tensor(sol.y[:, -1]).reshape(shape)


@pytest.mark.parametrize("name", [n for n, ls in LANDSCAPES.items() if ls.saddles])
def test_gradient_flow_from_each_saddle_ends_in_two_listed_minima(name):
    ls = LANDSCAPES[name]
    starts = []
    for cp in ls.saddles:
        _, h = grad_and_hessian(ls, cp.point)
        v = torch.linalg.eigh(h).eigenvectors[:, 0]
        p = cp.as_tensor()
        starts += [p + 1e-3 * v, p - 1e-3 * v]
    ends = _gradient_flow(ls, torch.stack(starts))
    minima = torch.stack([m.as_tensor() for m in ls.minima])
    dist = torch.cdist(ends, minima)
    assert dist.min(dim=1).values.max().item() < 1e-4, dist
    nearest = dist.argmin(dim=1)
    for i, cp in enumerate(ls.saddles):
        joined = {ls.minima[int(nearest[2 * i])].label, ls.minima[int(nearest[2 * i + 1])].label}
        assert len(joined) == 2, (cp.label, joined)  # the two sides fall into different minima
        if "-" in cp.label and not cp.label.startswith("("):
            assert joined == set(cp.label.split("-")), (cp.label, joined)


def test_tilted_double_well_matches_the_1d_cubic_and_its_roots():
    ls = get_landscape("tilted-double-well")
    roots = np.sort(np.roots([4.0, 0.0, -4.0, 0.3]).real)  # f'(x) = 4x³ − 4x + 0.3
    listed = [ls.critical_point(lbl) for lbl in ("global", "barrier", "local")]
    np.testing.assert_allclose([cp.point[0] for cp in listed], roots, rtol=0, atol=1e-13)
    assert all(cp.point[1] == 0.0 for cp in listed)
    f1 = lambda x: x**4 - 2 * x**2 + 0.3 * x  # noqa: E731
    np.testing.assert_allclose([cp.value for cp in listed], f1(roots), atol=1e-13)
    # the roots and values to 4 decimals, worked by hand
    np.testing.assert_allclose(roots, [-1.0356, 0.0754, 0.9601], atol=6e-5)
    np.testing.assert_allclose([cp.value for cp in listed], [-1.3054, 0.0113, -0.7059], atol=6e-5)


def test_rastrigin_points_are_products_of_the_1d_roots():
    ls = get_landscape("rastrigin")
    d1 = lambda t: 2 * t + 20 * math.pi * math.sin(2 * math.pi * t)  # noqa: E731
    t_min = so.brentq(d1, 0.9, 1.1, xtol=1e-15)
    t_max = so.brentq(d1, 0.4, 0.6, xtol=1e-15)
    coords = {round(abs(c), 12) for cp in ls.critical_points for c in cp.point}
    assert coords == {0.0, round(t_min, 12), round(t_max, 12)}
    assert len(ls.minima) == 9 and len(ls.saddles) == 12 and len(ls.maxima) == 4
    assert ls.global_minimum.point == (0.0, 0.0) and ls.global_minimum.value == 0.0
    # the next 1-D maximum lies outside [−1.5, 1.5]: the listing is complete in the domain
    assert so.brentq(d1, 1.4, 1.6) > 1.5


def test_published_values():
    mb = get_landscape("muller-brown")  # Müller & Brown 1979 / issue 2
    got = {cp.label: round(cp.value, 2) for cp in mb.critical_points}
    assert got == {"A": -146.70, "B": -108.17, "C": -80.77, "A-C": -40.66, "C-B": -72.25}
    np.testing.assert_allclose(mb.critical_point("A").point, (-0.558, 1.442), atol=1e-3)
    np.testing.assert_allclose(mb.critical_point("B").point, (0.623, 0.028), atol=1e-3)
    np.testing.assert_allclose(mb.critical_point("C").point, (-0.050, 0.467), atol=1e-3)
    hb = get_landscape("himmelblau")
    assert hb.maxima[0].value == pytest.approx(181.617, abs=1e-3)
    assert all(m.value == pytest.approx(0.0, abs=1e-25) for m in hb.minima)
    toy = get_landscape("four-gaussian-toy")  # the four-Gaussian toy of Yu & Morozov 2026
    assert toy.global_minimum.label == "B"
    assert toy.critical_point("lowest").value == pytest.approx(0.62439, abs=1e-5)
    assert toy.critical_point("second").value == pytest.approx(0.63726, abs=1e-5)
    assert toy.critical_point("A").value == pytest.approx(0.10871, abs=1e-5)
    assert toy.f(torch.tensor([-0.62, -0.54])).item() == pytest.approx(0.10906, abs=1e-5)
    t = torch.linspace(0, 1, 20001, dtype=torch.float64)[:, None]
    line = (1 - t) * torch.tensor([-0.62, -0.54]) + t * torch.tensor([0.49, -0.02])
    assert toy.f(line).max().item() == pytest.approx(1.102, abs=1e-3)  # paper's straight H
    for name in ("double-well", "curved-double-well"):
        assert get_landscape(name).saddles[0].value == 1.0
    sq = get_landscape("saddle-quartic")
    assert [m.value for m in sq.minima] == [-0.5, -0.5] and sq.saddles[0].point == (0.0, 0.0)


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_metadata_is_consistent(name):
    ls = LANDSCAPES[name]
    assert ls.name == name and ls.dim == 2 and ls.description
    labels = [cp.label for cp in ls.critical_points]
    assert len(labels) == len(set(labels))
    for group, kind in ((ls.minima, "minimum"), (ls.saddles, "saddle"), (ls.maxima, "maximum")):
        assert all(isinstance(cp, CriticalPoint) and cp.kind == kind for cp in group)
    assert ls.minima
    (x0, x1), (y0, y1) = ls.domain
    for p in [cp.point for cp in ls.critical_points] + [ls.default_start]:
        assert x0 <= p[0] <= x1 and y0 <= p[1] <= y1, p
    g, _ = grad_and_hessian(ls, ls.default_start)
    assert g.norm().item() > 1e-4  # a start that is not already stationary
    assert ls.global_minimum.value == min(cp.value for cp in ls.minima)


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_f_broadcasts_over_leading_dims(name):
    ls = LANDSCAPES[name]
    pts = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    batched = ls.f(pts)
    assert batched.shape == (3, 4) and batched.dtype == torch.float64
    one_by_one = torch.stack([torch.stack([ls.f(p) for p in row]) for row in pts])
    np.testing.assert_allclose(batched.numpy(), one_by_one.numpy(), rtol=1e-14, atol=1e-12)
    assert ls.f(pts.float()).dtype == torch.float32
    assert ls(list(ls.default_start)).item() == pytest.approx(ls.f(torch.tensor(ls.default_start)).item())


@pytest.mark.parametrize("name", ["muller-brown", "four-gaussian-toy", "rastrigin"])
def test_function_objective_agrees_with_f(name):
    ls = LANDSCAPES[name]
    obj = ls.objective()
    assert isinstance(obj, FunctionObjective)
    assert obj.flat_params().dtype == torch.float64 and obj.flat_params().tolist() == list(ls.default_start)
    pts = torch.tensor([[0.1, 0.2], [-0.3, 0.7], list(ls.minima[0].point)], dtype=torch.float64)
    values, _ = obj.evaluate_many(pts)
    np.testing.assert_allclose(values.numpy(), ls.f(pts).numpy(), rtol=1e-15)
    for p in pts:
        g, h = grad_and_hessian(ls, p.tolist())
        assert obj.loss(p) == pytest.approx(ls.f(p).item(), rel=1e-15)
        np.testing.assert_allclose(obj.grad(p).numpy(), g.numpy(), rtol=1e-14, atol=1e-14)
        v = torch.tensor([0.6, -0.8], dtype=torch.float64)
        np.testing.assert_allclose(obj.hvp(p, v).numpy(), (h @ v).numpy(), rtol=1e-12, atol=1e-10)
    at = ls.objective(x0=ls.minima[0].point)
    assert at.loss() == pytest.approx(ls.minima[0].value, abs=1e-12)


def test_grid_for_contour_plots():
    ls = get_landscape("himmelblau")
    X, Y, Z = ls.grid(7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert X[0, 0].item() == -5.0 and X[0, -1].item() == 5.0 and Y[-1, 0].item() == 5.0
    i, j = 2, 5
    assert Z[i, j].item() == pytest.approx(ls.f(torch.stack([X[i, j], Y[i, j]])).item())
    X2, _, _ = ls.grid(3, domain=((0.0, 1.0), (0.0, 2.0)))
    assert X2[0].tolist() == [0.0, 0.5, 1.0]


def test_user_errors_are_one_line_and_name_the_argument():
    with pytest.raises(UsageError, match=r"unknown landscape 'nope'; allowed: rosenbrock, .*muller-brown"):
        get_landscape("nope")
    assert get_landscape("Muller_Brown") is get_landscape("müller-brown") is LANDSCAPES["muller-brown"]
    ls = get_landscape("rosenbrock")
    with pytest.raises(UsageError, match=r"points must have shape \(\.\.\., 2\)"):
        ls.f(torch.zeros(4, 3))
    with pytest.raises(UsageError, match="x0 must have 2 coordinates"):
        ls.objective(x0=[1.0, 2.0, 3.0])
    with pytest.raises(UsageError, match="n must be an integer >= 2"):
        ls.grid(1)
    with pytest.raises(UsageError, match="label 'Z' is not a critical point"):
        ls.critical_point("Z")
