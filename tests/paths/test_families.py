"""Path families (Fourier, Bézier, polyline): the straight line at zero control, exact endpoints
for any control, and the Fourier gradient equal to the paper's Algorithm 2 written out by hand."""

from __future__ import annotations

import math

import torch

from topograph.paths import BezierPath, FourierPath, PolylinePath

D = torch.float64


def curved_double_well(w):
    x, y = w[..., 0], w[..., 1]
    return (x ** 2 - 1) ** 2 + 2 * (y - 0.8 * (1 - x ** 2)) ** 2


def test_zero_coefficients_and_linear_bends_give_the_straight_line():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, generator=g, dtype=D), torch.randn(7, generator=g, dtype=D)
    t = torch.linspace(0, 1, 13, dtype=D)
    line = (1 - t)[:, None] * a + t[:, None] * b
    for path in (FourierPath(a, b, n_terms=5), BezierPath(a, b, bends=3), PolylinePath(a, b, bends=2)):
        torch.testing.assert_close(path.points(t), line, rtol=0, atol=1e-12)


def test_endpoints_are_exact_for_any_control():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, generator=g, dtype=D), torch.randn(5, generator=g, dtype=D)
    for path in (FourierPath(a, b, n_terms=4), BezierPath(a, b, bends=2), PolylinePath(a, b, bends=3)):
        with torch.no_grad():
            path.control.copy_(torch.randn(path.control.shape, generator=g, dtype=D) * 10)
        ends = path.points([0.0, 1.0])
        assert torch.equal(ends[0], a) and torch.equal(ends[1], b)


def test_fourier_gradient_is_the_papers_algorithm_2():
    """∂J/∂b_n = Σ_m g_m sin(nπt_m) + 2λ Σ_m Δω_m (sin(nπt_{m+1}) − sin(nπt_m))."""
    f = curved_double_well
    a, b = torch.tensor([-1.0, 0.0], dtype=D), torch.tensor([1.0, 0.0], dtype=D)
    path = FourierPath(a, b, n_terms=3)
    with torch.no_grad():
        path.control.copy_(torch.tensor([[0.1, 0.5], [-0.2, 0.1], [0.05, -0.3]], dtype=D))
    t = torch.linspace(0, 1, 11, dtype=D)
    lam = 0.7
    w = path.points(t)
    (f(w).sum() + lam * (w[1:] - w[:-1]).pow(2).sum()).backward()
    with torch.no_grad():
        pts = path.points(t)
        grads = torch.stack([torch.autograd.functional.jacobian(f, p) for p in pts])
        expected = torch.zeros(3, 2, dtype=D)
        for n in range(1, 4):
            s = torch.sin(n * math.pi * t)
            expected[n - 1] = (grads * s[:, None]).sum(0)
            expected[n - 1] += 2 * lam * ((pts[1:] - pts[:-1]) * (s[1:] - s[:-1])[:, None]).sum(0)
    torch.testing.assert_close(path.control.grad, expected)
