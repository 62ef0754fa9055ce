"""The curvature operators (Hessian, Gauss–Newton, per-layer blocks, batched products) against
dense references: torch.autograd.functional.hessian + eigh, dense Jacobians for JᵀHJ, and the
Hessian of an analytic function."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import (
    assert_same_direction,
    classification_data,
    cross_entropy_of_flat,
    dense_hessian,
    tiny_mlp,
)
from topograph.core import FunctionObjective, Objective
from topograph.curvature import (
    GaussNewtonOperator,
    HessianOperator,
    hutchinson,
    hutchpp,
    lanczos,
    layer_curvature,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
DT = torch.float64


def test_hessian_eigenpairs_and_trace_match_dense_hessian(mlp_case):
    obj, model, x, y, h, evals, evecs = mlp_case
    op = HessianOperator(obj)
    n = op.size
    assert n == h.shape[0] and op.dtype == torch.float64
    top = lanczos(op, k=3, which="both", tol=1e-10, max_steps=n)
    ref = torch.cat([evals.flip(0)[:3], evals[:3].flip(0)])
    torch.testing.assert_close(top.eigenvalues, ref, rtol=1e-4, atol=1e-10)
    for i, j in enumerate([-1, -2, -3, 2, 1, 0]):
        assert_same_direction(top.eigenvectors[:, i], evecs[:, j], tol=1e-6)
    # bottom-k: the network Hessian here is indefinite, and SA finds its most negative pair
    assert float(evals[0]) < 0
    bottom = lanczos(op, k=1, which="SA", tol=1e-10, max_steps=n)
    assert float(bottom.eigenvalues[0]) == pytest.approx(float(evals[0]), rel=1e-4)
    # Hutch++ with a sketch that spans the space is exact; Hutchinson within its error bars
    exact = hutchpp(op, hvps=3 * n)
    assert exact.estimate == pytest.approx(float(torch.trace(h)), rel=1e-4)
    est = hutchinson(op, probes=200, seed=1)
    assert abs(est.estimate - float(torch.trace(h))) < 5 * est.std_error


def test_hessian_on_one_batch_and_forward_over_reverse_agree(mlp_case):
    obj, model, x, y, *_ = mlp_case
    h_batch = dense_hessian(cross_entropy_of_flat(model, x[:10], y[:10]), obj.flat_params())
    for method in ("double_backward", "forward_over_reverse"):
        op = HessianOperator(obj, batch=(x[:10], y[:10]), method=method)
        res = lanczos(op, k=1, tol=1e-10, max_steps=op.size)
        assert float(res.eigenvalues[0]) == pytest.approx(float(torch.linalg.eigvalsh(h_batch)[-1]), rel=1e-4)


def test_per_layer_block_equals_dense_block(mlp_case):
    obj, model, x, y, h, *_ = mlp_case
    spec = obj.spec
    names = ["3.weight", "3.bias"]
    idx = torch.cat([torch.arange(spec.slice_of(nm).start, spec.slice_of(nm).stop) for nm in names])
    block = h[idx][:, idx]
    ref = torch.linalg.eigvalsh(block)
    op = HessianOperator(obj, params=names)
    assert op.size == len(idx)
    res = lanczos(op, k=2, which="LA", tol=1e-10, max_steps=op.size)
    torch.testing.assert_close(res.eigenvalues, torch.stack([ref[-1], ref[-2]]), rtol=1e-4, atol=0)
    # the block's smallest eigenvalue is 0 with multiplicity 5 (softmax is invariant to a shift
    # of the logits); a single-vector Krylov space holds one copy of it
    low = lanczos(op, k=1, which="SA", tol=1e-10, max_steps=op.size)
    assert abs(float(low.eigenvalues[0]) - float(ref[0])) < 1e-8 * float(ref.abs().max())
    layers = layer_curvature(obj, k=1, trace_probes=15)  # layer "3" (15 params) exact trace
    by_name = {lc.name: lc for lc in layers}
    assert set(by_name) == {"1", "3"}
    assert by_name["3"].trace == pytest.approx(float(torch.trace(block)), rel=1e-6)
    assert by_name["3"].top_eigenvalues[0] == pytest.approx(float(ref[-1]), rel=1e-3)
    idx1 = torch.cat([torch.arange(spec.slice_of(nm).start, spec.slice_of(nm).stop)
                      for nm in ("1.weight", "1.bias")])
    assert by_name["1"].top_eigenvalues[0] == pytest.approx(
        float(torch.linalg.eigvalsh(h[idx1][:, idx1])[-1]), rel=1e-3)


def test_gauss_newton_equals_dense_jt_h_j():
    model = tiny_mlp((5, 4, 3), activation=nn.ReLU).double()
    x, y = classification_data(11, dtype=DT)
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=4)
    spec = obj.spec
    theta = obj.flat_params()
    out_fn = lambda t: torch.func.functional_call(model, spec.unflatten(t), (x,))  # noqa: E731
    jac = torch.autograd.functional.jacobian(out_fn, theta)  # (N, C, P)
    p = torch.softmax(out_fn(theta), dim=1)
    g_dense = torch.zeros(spec.size, spec.size, dtype=DT)
    for i in range(x.shape[0]):
        h_l = torch.diag(p[i]) - torch.outer(p[i], p[i])  # ∂²CE/∂f² of one sample
        g_dense += jac[i].T @ h_l @ jac[i] / x.shape[0]
    op = GaussNewtonOperator(obj)
    eye = torch.eye(spec.size, dtype=DT)
    g_op = torch.stack([op.matvec(eye[i]) for i in range(spec.size)], dim=1)
    torch.testing.assert_close(g_op, g_dense, rtol=1e-8, atol=1e-10)
    assert op.hvps == spec.size
    assert float(torch.linalg.eigvalsh(g_op)[0]) > -1e-10  # PSD for cross-entropy


def test_batched_matmat_equals_matvec_loop_and_counts(mlp_case):
    obj, model, x, y, h, *_ = mlp_case
    op = HessianOperator(obj)
    v = torch.randn(5, op.size, dtype=DT, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.matmat(v), v @ h, rtol=1e-10, atol=1e-12)
    assert op.hvps == 5
    blocked = hutchinson(op, probes=12, seed=4, block=5)
    single = hutchinson(op, probes=12, seed=4, block=None)
    torch.testing.assert_close(blocked.samples, single.samples, rtol=1e-10, atol=1e-12)


def _saddle_fn(v):
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return x**2 - 2 * y**2 + 0.5 * z**2 + x * y * z + torch.sin(x + z)


def test_function_objective_saddle_bottom_eigenvalue_is_negative_and_exact():
    theta = torch.tensor([0.3, -0.2, 0.1], dtype=DT)
    obj = FunctionObjective(_saddle_fn, 3)
    dense = torch.autograd.functional.hessian(_saddle_fn, theta)
    ref_vals, ref_vecs = torch.linalg.eigh(dense)
    assert float(ref_vals[0]) < 0
    res = lanczos(HessianOperator(obj, theta), k=1, which="SA", tol=1e-12)
    assert float(res.eigenvalues[0]) == pytest.approx(float(ref_vals[0]), rel=1e-8)
    assert_same_direction(res.eigenvectors[:, 0], ref_vecs[:, 0], tol=1e-8)
