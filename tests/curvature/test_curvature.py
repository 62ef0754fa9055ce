"""topograph.curvature against independent references: dense Hessians from
torch.autograd.functional.hessian + eigh, numpy.linalg.eigh on plain matrices, dense Jacobians for
the Gauss–Newton matrix, analytic quadratics with known spectra and box maxima."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from topograph.core import FunctionObjective, Objective, ParamSpec
from topograph.curvature import (
    GaussNewtonOperator, HessianOperator, LinearOperator, MatrixOperator, curvature_summary,
    epsilon_sharpness, hutchinson, hutchpp, lanczos, layer_curvature, measure_point,
    measures_along, measures_along_trajectory, negative_curvature, plot_along, plot_density,
    power_iteration, spectral_density,
)
from topograph.errors import UsageError
from topograph.models import MLP


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: thread-pool wake-ups would dominate every product on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_problem(n=37, d=5, h=4, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    torch.manual_seed(seed)
    model = MLP([d, h, k]).double()
    return model, x, y


def dense_hessian(model, x, y, theta=None):
    spec = ParamSpec.from_module(model)
    flat0 = spec.flatten(dict(model.named_parameters())).detach() if theta is None else theta

    def f(flat):
        return F.cross_entropy(torch.func.functional_call(model, spec.unflatten(flat), (x,)), y)

    return torch.autograd.functional.hessian(f, flat0)


def random_symmetric(n, seed=0, spectrum=None):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.standard_normal(n) if spectrum is None else np.asarray(spectrum, dtype=float)
    a = (q * lam) @ q.T
    return (a + a.T) / 2


def assert_same_direction(u, v, tol=1e-5):
    u, v = u / u.norm(), v / v.norm()
    assert abs(abs(float(u @ v)) - 1.0) < tol


@pytest.fixture(scope="module")
def mlp_case():
    model, x, y = tiny_problem()
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=16)  # 3 chunks
    h = dense_hessian(model, x, y)
    evals, evecs = torch.linalg.eigh(h)
    return obj, model, x, y, h, evals, evecs


# ---------------------------------------------------------------------------- Lanczos / power
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
    op = MatrixOperator(torch.eye(3, dtype=torch.float64))
    with pytest.raises(UsageError, match="which"):
        lanczos(op, which="LM")
    with pytest.raises(UsageError, match="k="):
        lanczos(op, k=4)
    with pytest.raises(UsageError, match="symmetric"):
        MatrixOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]])).matvec(torch.ones(2))
    with pytest.raises(UsageError, match="Hutch\\+\\+"):
        hutchpp(op, hvps=2)


# ---------------------------------------------------------------------------- Hessian of a network
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
    h_batch = dense_hessian(model, x[:10], y[:10])
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
    model, x, y = tiny_problem(n=11)
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=4)
    spec = obj.spec
    theta = obj.flat_params()
    out_fn = lambda t: torch.func.functional_call(model, spec.unflatten(t), (x,))  # noqa: E731
    jac = torch.autograd.functional.jacobian(out_fn, theta)  # (N, C, P)
    p = torch.softmax(out_fn(theta), dim=1)
    g_dense = torch.zeros(spec.size, spec.size, dtype=torch.float64)
    for i in range(x.shape[0]):
        h_l = torch.diag(p[i]) - torch.outer(p[i], p[i])  # ∂²CE/∂f² of one sample
        g_dense += jac[i].T @ h_l @ jac[i] / x.shape[0]
    op = GaussNewtonOperator(obj)
    eye = torch.eye(spec.size, dtype=torch.float64)
    g_op = torch.stack([op.matvec(eye[i]) for i in range(spec.size)], dim=1)
    torch.testing.assert_close(g_op, g_dense, rtol=1e-8, atol=1e-10)
    assert op.hvps == spec.size
    assert float(torch.linalg.eigvalsh(g_op)[0]) > -1e-10  # PSD for cross-entropy


# ---------------------------------------------------------------------------- analytic landscapes
def _saddle_fn(v):
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return x**2 - 2 * y**2 + 0.5 * z**2 + x * y * z + torch.sin(x + z)


def test_function_objective_saddle_bottom_eigenvalue_is_negative_and_exact():
    theta = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    obj = FunctionObjective(_saddle_fn, 3)
    dense = torch.autograd.functional.hessian(_saddle_fn, theta)
    ref_vals, ref_vecs = torch.linalg.eigh(dense)
    assert float(ref_vals[0]) < 0
    res = lanczos(HessianOperator(obj, theta), k=1, which="SA", tol=1e-12)
    assert float(res.eigenvalues[0]) == pytest.approx(float(ref_vals[0]), rel=1e-8)
    assert_same_direction(res.eigenvectors[:, 0], ref_vecs[:, 0], tol=1e-8)


def test_negative_curvature_on_a_quadratic_with_known_spectrum():
    diag = torch.tensor([-1.0, 2.0, 3.0, 0.5, 1.0, 1.5, 2.5, 0.25, 0.75, 1.25], dtype=torch.float64)
    obj = FunctionObjective(lambda v: 0.5 * (v**2 * diag).sum(-1), 10)
    nc = negative_curvature(obj, steps=10, runs=3)
    # full Krylov space: nodes are the eigenvalues; Rademacher start ⇒ weight of e_1 is exactly 1/n
    assert nc.negative_fraction == pytest.approx(0.1, abs=1e-10)
    assert nc.lambda_min == pytest.approx(-1.0, rel=1e-8)
    assert nc.lambda_max == pytest.approx(3.0, rel=1e-8)
    assert nc.ratio == pytest.approx(1 / 3, rel=1e-8)
    assert nc.negative_mass == pytest.approx(0.1, rel=1e-8)


def test_epsilon_sharpness_reaches_the_box_vertex_of_a_quadratic():
    a = torch.tensor([1.0, 4.0, 0.5, 2.0], dtype=torch.float64)
    theta = torch.tensor([0.0, 1.0, -2.0, 0.0], dtype=torch.float64)
    obj = FunctionObjective(lambda v: 0.5 * (a * (v - theta) ** 2).sum(-1) + 1.0, 4)
    eps = 1e-2
    res = epsilon_sharpness(obj, theta, epsilon=eps, steps=10)
    b = eps * (theta.abs() + 1)
    expected = float(0.5 * (a * b**2).sum())  # max over the box is at a vertex
    assert res.increase == pytest.approx(expected, rel=1e-10)
    assert res.value == pytest.approx(100 * expected / 2.0, rel=1e-10)
    assert res.work.backward_passes == 11 and res.work.forward_passes == 12


# ---------------------------------------------------------------------------- trace estimators
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


# ---------------------------------------------------------------------------- spectral density
def test_slq_density_integrates_to_one_and_matches_dense_moments(mlp_case):
    obj, model, x, y, h, evals, _ = mlp_case
    n = h.shape[0]
    dens = spectral_density(HessianOperator(obj), steps=12, runs=60, seed=0)
    grid, phi = dens.grid, dens.density
    assert float(torch.trapezoid(phi, grid)) == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(dens.weights.sum(1), torch.ones(60, dtype=torch.float64))
    m1, m2 = float(evals.mean()), float((evals**2).mean())  # trace/n, ‖H‖_F²/n
    assert dens.moment(1) == pytest.approx(m1, rel=0.1)
    assert dens.moment(2) == pytest.approx(m2, rel=0.1)
    # the broadened density keeps the mean and adds σ² to the second moment
    assert float(torch.trapezoid(grid * phi, grid)) == pytest.approx(dens.moment(1), rel=1e-4, abs=1e-8)
    assert float(torch.trapezoid(grid**2 * phi, grid)) == pytest.approx(
        dens.moment(2) + dens.sigma**2, rel=1e-4)
    assert dens.work.hvps == 12 * 60 and dens.trace() == pytest.approx(n * dens.moment(1))


def test_slq_quadrature_is_exact_for_low_degree_polynomials():
    a = torch.tensor(random_symmetric(50, seed=7))
    dens = spectral_density(MatrixOperator(a), steps=4, runs=1, seed=3)
    # Gauss quadrature with 4 nodes is exact to degree 7: Σ τ θ^p = vᵀ A^p v for the start v
    from topograph.curvature._random import generator, probes
    v = probes(50, 1, gen=generator(3), dtype=torch.float64, device=torch.device("cpu"))[0]
    v = v / v.norm()
    for p in (1, 2, 5, 7):
        assert dens.moment(p) == pytest.approx(float(v @ torch.linalg.matrix_power(a, p) @ v), rel=1e-8)


def test_density_and_along_plots_write_png_and_svg(tmp_path, mlp_case):
    obj, model, x, y, h, *_ = mlp_case
    dens = spectral_density(HessianOperator(obj), steps=10, runs=2)
    paths = plot_density(dens, tmp_path / "density.png")
    assert [p.name for p in paths] == ["density.png", "density.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert not list(tmp_path.glob(".*"))  # no temp files left


# ---------------------------------------------------------------------------- measures / along
def test_curvature_summary_and_measure_point_agree_with_dense(mlp_case):
    obj, model, x, y, h, evals, _ = mlp_case
    s = curvature_summary(obj, k=2, trace_probes=3 * h.shape[0], tol=1e-8)
    assert s["top_eigenvalues"] == pytest.approx(evals.flip(0)[:2].tolist(), rel=1e-4)
    assert s["trace"] == pytest.approx(float(torch.trace(h)), rel=1e-4)
    assert s["work"]["hvps"] > 0 and s["seconds"] >= 0
    m = measure_point(obj, k=1, tol=1e-8, trace_probes=3 * h.shape[0], density_steps=h.shape[0])
    assert m.top_eigenvalue == pytest.approx(float(evals[-1]), rel=1e-4)
    assert m.lambda_min == pytest.approx(float(evals[0]), rel=1e-4)
    assert m.loss == pytest.approx(float(F.cross_entropy(model(x), y)), rel=1e-10)
    assert m.epsilon_sharpness > 0


class _FakeRun:
    """The topograph.runs.Run API the trajectory code relies on: snapshots() and objective()."""

    def __init__(self, obj, points):
        self._obj, self._points = obj, points

    def snapshots(self):
        return [(e, 10 * e) for e in range(len(self._points))], self._points

    def objective(self):
        return self._obj


def test_measures_along_points_and_trajectory_match_dense(tmp_path, mlp_case):
    obj, model, x, y, *_ = mlp_case
    theta0 = obj.flat_params()
    g = torch.Generator().manual_seed(1)
    points = torch.stack([theta0 + 0.3 * t * torch.randn(theta0.shape, generator=g, dtype=torch.float64)
                          for t in range(3)])
    kw = dict(tol=1e-8, trace_probes=3 * obj.size, epsilon=None, density_steps=None)
    along = measures_along(obj, points, **kw)
    assert along.positions[0] == 0 and along.positions[-1] == 1
    for i in range(3):
        ref = torch.linalg.eigvalsh(dense_hessian(model, x, y, points[i]))
        assert along.measures[i].top_eigenvalue == pytest.approx(float(ref[-1]), rel=1e-4)
        assert along.measures[i].trace == pytest.approx(float(ref.sum()), rel=1e-4)
    traj = measures_along_trajectory(_FakeRun(obj, points), **kw)
    assert traj.xlabel == "epoch" and traj.labels[2] == (2, 20)
    torch.testing.assert_close(traj.column("top_eigenvalue"), along.column("top_eigenvalue"))
    paths = plot_along(traj, tmp_path / "along")
    assert all(p.exists() for p in paths)
    with pytest.raises(UsageError, match="points"):
        measures_along(obj, points[:, :5])


def test_batched_matmat_equals_matvec_loop_and_counts(mlp_case):
    obj, model, x, y, h, *_ = mlp_case
    op = HessianOperator(obj)
    v = torch.randn(5, op.size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.matmat(v), v @ h, rtol=1e-10, atol=1e-12)
    assert op.hvps == 5
    blocked = hutchinson(op, probes=12, seed=4, block=5)
    single = hutchinson(op, probes=12, seed=4, block=None)
    torch.testing.assert_close(blocked.samples, single.samples, rtol=1e-10, atol=1e-12)


def test_lanczos_started_at_the_gradient_finds_the_dense_top_eigenvalue():
    from topograph.core import Objective as _Objective
    from topograph.curvature import HessianOperator as _HessianOperator, lanczos as _lanczos
    from topograph.models import MLP as _MLP

    torch.manual_seed(0)
    model = _MLP([6, 5, 3]).double()
    x, y = torch.randn(50, 6, dtype=torch.float64), torch.randint(0, 3, (50,))
    obj = _Objective(model, F.cross_entropy, (x, y))
    theta = obj.flat_params()
    dense = torch.autograd.functional.hessian(
        lambda t: F.cross_entropy(torch.func.functional_call(model, obj.spec.unflatten(t), (x,)), y), theta)
    top = torch.linalg.eigvalsh(dense)[-1]
    op = _HessianOperator(obj, theta)
    torch.testing.assert_close(op.gradient(), obj.grad(theta), rtol=1e-8, atol=1e-10)
    res = _lanczos(op, k=1, tol=1e-8, start="gradient")
    assert res.eigenvalues[0].item() == pytest.approx(top.item(), rel=1e-6)
    # the Krylov space really starts at the gradient: same Ritz value as an explicit v0 = ∇L
    short = _lanczos(_HessianOperator(obj, theta), k=1, tol=0.0, max_steps=3, start="gradient")
    explicit = _lanczos(_HessianOperator(obj, theta), k=1, tol=0.0, max_steps=3, v0=obj.grad(theta))
    rand = _lanczos(_HessianOperator(obj, theta), k=1, tol=0.0, max_steps=3, seed=0)
    assert short.eigenvalues[0].item() == pytest.approx(explicit.eigenvalues[0].item(), rel=1e-10)
    assert short.eigenvalues[0].item() != pytest.approx(rand.eigenvalues[0].item(), rel=1e-10)


def test_lanczos_change_rule_stops_early_and_reports_convergence_honestly():
    from topograph.curvature import MatrixOperator as _MatrixOperator, lanczos as _lanczos

    g = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(60, 60, generator=g, dtype=torch.float64))
    vals = torch.cat([torch.tensor([10.0, 6.0], dtype=torch.float64), torch.rand(58, generator=g, dtype=torch.float64)])
    a = q @ torch.diag(vals) @ q.T
    res = _lanczos(_MatrixOperator(a), k=1, tol=1e-6, criterion="change")
    assert res.converged and res.work.hvps < 30
    assert res.eigenvalues[0].item() == pytest.approx(10.0, rel=1e-5)
    capped = _lanczos(_MatrixOperator(a), k=1, tol=1e-14, criterion="change", max_steps=3)
    assert not capped.converged
