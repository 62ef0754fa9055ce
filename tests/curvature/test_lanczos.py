"""Lanczos and power iteration (with deflation) against numpy.linalg.eigh on plain matrices with
known spectra and against the dense Hessian of a tiny network."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import (
    assert_same_direction,
    classification_data,
    cross_entropy_of_flat,
    dense_hessian,
    random_symmetric,
    tiny_mlp,
)
from topograph.core import Objective
from topograph.curvature import HessianOperator, LinearOperator, MatrixOperator, hutchpp, lanczos, power_iteration
from topograph.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
DT = torch.float64


def test_lanczos_matches_numpy_eigh_on_random_symmetric_matrix():
    a = random_symmetric(80, seed=1)
    ref_vals, ref_vecs = np.linalg.eigh(a)
    op = MatrixOperator(torch.tensor(a))
    assert isinstance(op, LinearOperator)
    top = lanczos(op, k=3, which="LA", tol=1e-10, max_steps=80)
    np.testing.assert_allclose(top.eigenvalues.numpy(), ref_vals[::-1][:3], rtol=1e-8)
    for i in range(3):
        assert_same_direction(top.eigenvectors[:, i], torch.tensor(ref_vecs[:, -1 - i]))
    bottom = lanczos(op, k=2, which="SA", tol=1e-10, max_steps=80)
    np.testing.assert_allclose(bottom.eigenvalues.numpy(), ref_vals[:2][::-1], rtol=1e-8)
    both = lanczos(op, k=2, which="both", tol=1e-10, max_steps=80)
    np.testing.assert_allclose(both.eigenvalues.numpy(),
                               np.r_[ref_vals[::-1][:2], ref_vals[:2][::-1]], rtol=1e-8)
    assert top.converged and top.work.hvps == top.steps <= 80
    assert op.hvps == top.work.hvps + bottom.work.hvps + both.work.hvps


def test_lanczos_stops_on_residual_tolerance_and_residual_is_true():
    spectrum = np.r_[10.0, 5.0, np.linspace(-1, 1, 198)]
    a = torch.tensor(random_symmetric(200, seed=2, spectrum=spectrum))
    res = lanczos(MatrixOperator(a), k=1, tol=1e-6, max_steps=200)
    assert res.converged and res.work.hvps < 60  # well separated top: few steps
    v, lam = res.eigenvectors[:, 0], float(res.eigenvalues[0])
    true_resid = float((a @ v - lam * v).norm())
    assert true_resid == pytest.approx(float(res.residuals[0]), rel=1e-3, abs=1e-12)
    assert abs(lam - 10.0) <= 1e-6 * 10.0


def test_power_iteration_with_deflation_finds_largest_magnitude_pairs():
    spectrum = np.r_[4.0, -3.0, np.linspace(0, 1, 48)]
    a = torch.tensor(random_symmetric(50, seed=3, spectrum=spectrum))
    res = power_iteration(MatrixOperator(a), k=2, max_iter=500, tol=1e-12)
    np.testing.assert_allclose(sorted(res.eigenvalues.numpy()), [-3.0, 4.0], rtol=1e-6)
    assert res.work.hvps == sum(res.steps)


def test_bad_arguments_raise_usage_errors():
    op = MatrixOperator(torch.eye(3, dtype=DT))
    with pytest.raises(UsageError, match="which"):
        lanczos(op, which="LM")
    with pytest.raises(UsageError, match="k="):
        lanczos(op, k=4)
    with pytest.raises(UsageError, match="symmetric"):
        MatrixOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]])).matvec(torch.ones(2))
    with pytest.raises(UsageError, match="Hutch\\+\\+"):
        hutchpp(op, hvps=2)


def test_lanczos_started_at_the_gradient_finds_the_dense_top_eigenvalue():
    model = tiny_mlp((6, 5, 3), activation=nn.ReLU).double()
    x, y = classification_data(50, (6,), 3, dtype=DT)
    obj = Objective(model, F.cross_entropy, (x, y))
    theta = obj.flat_params()
    top = torch.linalg.eigvalsh(dense_hessian(cross_entropy_of_flat(model, x, y), theta))[-1]
    op = HessianOperator(obj, theta)
    torch.testing.assert_close(op.gradient(), obj.grad(theta), rtol=1e-8, atol=1e-10)
    res = lanczos(op, k=1, tol=1e-8, start="gradient")
    assert res.eigenvalues[0].item() == pytest.approx(top.item(), rel=1e-6)
    # the Krylov space really starts at the gradient: same Ritz value as an explicit v0 = ∇L
    short = lanczos(HessianOperator(obj, theta), k=1, tol=0.0, max_steps=3, start="gradient")
    explicit = lanczos(HessianOperator(obj, theta), k=1, tol=0.0, max_steps=3, v0=obj.grad(theta))
    rand = lanczos(HessianOperator(obj, theta), k=1, tol=0.0, max_steps=3, seed=0)
    assert short.eigenvalues[0].item() == pytest.approx(explicit.eigenvalues[0].item(), rel=1e-10)
    assert short.eigenvalues[0].item() != pytest.approx(rand.eigenvalues[0].item(), rel=1e-10)


def test_lanczos_change_rule_stops_early_and_reports_convergence_honestly():
    g = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(60, 60, generator=g, dtype=DT))
    vals = torch.cat([torch.tensor([10.0, 6.0], dtype=DT), torch.rand(58, generator=g, dtype=DT)])
    a = q @ torch.diag(vals) @ q.T
    res = lanczos(MatrixOperator(a), k=1, tol=1e-6, criterion="change")
    assert res.converged and res.work.hvps < 30
    assert res.eigenvalues[0].item() == pytest.approx(10.0, rel=1e-5)
    capped = lanczos(MatrixOperator(a), k=1, tol=1e-14, criterion="change", max_steps=3)
    assert not capped.converged
