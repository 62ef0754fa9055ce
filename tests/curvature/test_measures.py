"""Curvature measures at a point and along points or a trajectory: negative curvature and
ε-sharpness on analytic quadratics with known spectra and box maxima, summaries and measures of a
tiny network against its dense Hessian."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import cross_entropy_of_flat, dense_hessian
from topograph.core import FunctionObjective
from topograph.curvature import (
    curvature_summary,
    epsilon_sharpness,
    measure_point,
    measures_along,
    measures_along_trajectory,
    negative_curvature,
    plot_along,
)
from topograph.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
DT = torch.float64


def test_negative_curvature_on_a_quadratic_with_known_spectrum():
    diag = torch.tensor([-1.0, 2.0, 3.0, 0.5, 1.0, 1.5, 2.5, 0.25, 0.75, 1.25], dtype=DT)
    obj = FunctionObjective(lambda v: 0.5 * (v**2 * diag).sum(-1), 10)
    nc = negative_curvature(obj, steps=10, runs=3)
    # full Krylov space: nodes are the eigenvalues; Rademacher start ⇒ weight of e_1 is exactly 1/n
    assert nc.negative_fraction == pytest.approx(0.1, abs=1e-10)
    assert nc.lambda_min == pytest.approx(-1.0, rel=1e-8)
    assert nc.lambda_max == pytest.approx(3.0, rel=1e-8)
    assert nc.ratio == pytest.approx(1 / 3, rel=1e-8)
    assert nc.negative_mass == pytest.approx(0.1, rel=1e-8)


def test_epsilon_sharpness_reaches_the_box_vertex_of_a_quadratic():
    a = torch.tensor([1.0, 4.0, 0.5, 2.0], dtype=DT)
    theta = torch.tensor([0.0, 1.0, -2.0, 0.0], dtype=DT)
    obj = FunctionObjective(lambda v: 0.5 * (a * (v - theta) ** 2).sum(-1) + 1.0, 4)
    eps = 1e-2
    res = epsilon_sharpness(obj, theta, epsilon=eps, steps=10)
    b = eps * (theta.abs() + 1)
    expected = float(0.5 * (a * b**2).sum())  # max over the box is at a vertex
    assert res.increase == pytest.approx(expected, rel=1e-10)
    assert res.value == pytest.approx(100 * expected / 2.0, rel=1e-10)
    assert res.work.backward_passes == 11 and res.work.forward_passes == 12


def test_curvature_summary_and_measure_point_agree_with_dense(mlp_case):
    obj, model, x, y, h, evals, _ = mlp_case
    s = curvature_summary(obj, k=2, trace_probes=3 * h.shape[0], tol=1e-8)
    assert s["top_eigenvalues"] == pytest.approx(evals.flip(0)[:2].tolist(), rel=1e-4)
    assert s["trace"] == pytest.approx(float(torch.trace(h)), rel=1e-4)
    assert s["work"]["hvps"] > 0 and s["seconds"] >= 0
    m = measure_point(obj, k=1, tol=1e-8, trace_probes=3 * h.shape[0], density_steps=h.shape[0])
    assert m.top_eigenvalue == pytest.approx(float(evals[-1]), rel=1e-4)
    assert m.lambda_min == pytest.approx(float(evals[0]), rel=1e-4)
    assert m.loss == pytest.approx(float(F.cross_entropy(model(x), y).detach()), rel=1e-10)
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
    points = torch.stack([theta0 + 0.3 * t * torch.randn(theta0.shape, generator=g, dtype=DT)
                          for t in range(3)])
    kw = dict(tol=1e-8, trace_probes=3 * obj.size, epsilon=None, density_steps=None)
    along = measures_along(obj, points, **kw)
    assert along.positions[0] == 0 and along.positions[-1] == 1
    for i in range(3):
        ref = torch.linalg.eigvalsh(dense_hessian(cross_entropy_of_flat(model, x, y), points[i]))
        assert along.measures[i].top_eigenvalue == pytest.approx(float(ref[-1]), rel=1e-4)
        assert along.measures[i].trace == pytest.approx(float(ref.sum()), rel=1e-4)
    traj = measures_along_trajectory(_FakeRun(obj, points), **kw)
    assert traj.xlabel == "epoch" and traj.labels[2] == (2, 20)
    torch.testing.assert_close(traj.column("top_eigenvalue"), along.column("top_eigenvalue"))
    paths = plot_along(traj, tmp_path / "along")
    assert all(p.exists() for p in paths)
    with pytest.raises(UsageError, match="points"):
        measures_along(obj, points[:, :5])
