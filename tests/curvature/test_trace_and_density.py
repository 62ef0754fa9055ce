"""Stochastic trace estimators (Hutchinson, Hutch++) and stochastic Lanczos quadrature
(spectral density) against exact traces and moments of plain matrices and of the dense Hessian
of a tiny network."""

import math

import numpy as np
import pytest
import torch

from topograph.curvature import HessianOperator, MatrixOperator, hutchinson, hutchpp, plot_density, spectral_density

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
DT = torch.float64


def test_hutchinson_and_hutchpp_unbiased_and_hutchpp_lower_variance():
    rng = np.random.default_rng(5)
    u, _ = np.linalg.qr(rng.standard_normal((120, 6)))
    noise = rng.standard_normal((120, 120)) * 0.02
    a = torch.tensor(u @ np.diag([50, 40, 30, 20, 10, 5.0]) @ u.T + (noise + noise.T) / 2)
    op = MatrixOperator(a)
    true = float(torch.trace(a))
    hs = torch.tensor([hutchinson(op, probes=30, seed=s).estimate for s in range(300)])
    hp = torch.tensor([hutchpp(op, hvps=30, seed=s).estimate for s in range(300)])
    for est in (hs, hp):
        assert abs(float(est.mean()) - true) < 4 * float(est.std()) / math.sqrt(len(est))
    assert float(hp.var()) < 0.1 * float(hs.var())


def test_slq_density_integrates_to_one_and_matches_dense_moments(mlp_case):
    obj, model, x, y, h, evals, _ = mlp_case
    n = h.shape[0]
    dens = spectral_density(HessianOperator(obj), steps=12, runs=60, seed=0)
    grid, phi = dens.grid, dens.density
    assert float(torch.trapezoid(phi, grid)) == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(dens.weights.sum(1), torch.ones(60, dtype=DT))
    m1, m2 = float(evals.mean()), float((evals**2).mean())  # trace/n, ‖H‖_F²/n
    assert dens.moment(1) == pytest.approx(m1, rel=0.1)
    assert dens.moment(2) == pytest.approx(m2, rel=0.1)
    # the broadened density keeps the mean and adds σ² to the second moment
    assert float(torch.trapezoid(grid * phi, grid)) == pytest.approx(dens.moment(1), rel=1e-4, abs=1e-8)
    assert float(torch.trapezoid(grid**2 * phi, grid)) == pytest.approx(
        dens.moment(2) + dens.sigma**2, rel=1e-4)
    assert dens.work.hvps == 12 * 60 and dens.trace() == pytest.approx(n * dens.moment(1))


def test_slq_quadrature_is_exact_for_low_degree_polynomials():
    """Gauss quadrature with 4 nodes is exact to degree 7: Σ τ θ^p = vᵀ A^p v for the start v.
    For a diagonal A and normalised Rademacher starts (v_i² = 1/n whatever the signs) that is
    mean(λ^p) in every run: a reference that needs no knowledge of the draw."""
    lam = torch.tensor(np.random.default_rng(7).standard_normal(50))
    dens = spectral_density(MatrixOperator(torch.diag(lam)), steps=4, runs=3, seed=3)
    for p in (1, 2, 5, 7):
        assert dens.moment(p) == pytest.approx(float((lam**p).mean()), rel=1e-8)


def test_density_and_along_plots_write_png_and_svg(tmp_path, mlp_case):
    obj, model, x, y, h, *_ = mlp_case
    dens = spectral_density(HessianOperator(obj), steps=10, runs=2)
    paths = plot_density(dens, tmp_path / "density.png")
    assert [p.name for p in paths] == ["density.png", "density.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert not list(tmp_path.glob(".*"))  # no temp files left
