"""QuasiNewton and the line searches against analytic answers, scipy and hand traces."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from tests.helpers import regression_data, tiny_mlp
from topograph.errors import UsageError
from topograph.optim.line_search import bracket_golden_search, golden_section_search
from topograph.optim.quasi_newton import QuasiNewton

DT = torch.float64


# ---------------------------------------------------------------- golden-section search
@pytest.mark.parametrize(
    ("f", "a", "b", "x_star"),
    [(lambda x: (x - 2.0) ** 2, 0.0, 5.0, 2.0), (math.cos, 0.0, 2 * math.pi, math.pi),
     (lambda x: abs(x - 1.3), 0.0, 4.0, 1.3)],
)
@pytest.mark.parametrize("tol", [1e-3, 1e-7])
def test_golden_section_reaches_tolerance_at_the_golden_rate(f, a, b, x_star, tol):
    calls = []
    result = golden_section_search(lambda x: calls.append(x) or f(x), a, b, tol=tol)
    assert result.converged and abs(result.x - x_star) <= tol
    assert result.bracket[0] <= x_star <= result.bracket[1]
    assert result.n_evals == len(calls)
    # two interior points, then the bracket shrinks by 0.618 per evaluation until width ≤ tol
    predicted = 2 + math.log(tol / (b - a)) / math.log(0.618034)
    assert predicted <= result.n_evals < predicted + 1


def test_golden_section_respects_the_evaluation_budget():
    result = golden_section_search(lambda x: (x - 2.0) ** 2, 0.0, 5.0, tol=1e-12, max_evals=10)
    assert result.n_evals == 10 and not result.converged


@pytest.mark.parametrize(("a", "b", "kwargs"), [(1.0, 0.0, {}), (0.0, 1.0, {"tol": 0.0}), (0.0, 1.0, {"max_evals": 1})])
def test_golden_section_bad_arguments(a, b, kwargs):
    with pytest.raises(UsageError):
        golden_section_search(math.cos, a, b, **kwargs)


def test_seed001_line_search_expanding_trace():
    """Trials 0.2, 0.8, 1.6, 3.2, 6.4 (the bracketing trials of Yu & Morozov 2026), then golden on (1.6, 3.2, 6.4)."""
    trials = []
    result = bracket_golden_search(lambda u: trials.append(u) or (u - 3.0) ** 2, 9.0, 0.2)
    assert trials[:5] == pytest.approx([0.2, 0.8, 1.6, 3.2, 6.4])
    assert trials[5] == pytest.approx(1.6 + 0.382 * 4.8)  # right part longer: a + 0.382 (b − a)
    assert len(trials) == result.n_evals == 6
    assert result.step == pytest.approx(3.2) and result.decreased and result.phase == "golden"


def test_seed001_line_search_shrinking_trace():
    trials = []
    result = bracket_golden_search(lambda u: trials.append(u) or (u - 0.05) ** 2, 0.0025, 1.0,
                                   max_evals=60, tol=1e-10)
    assert trials == pytest.approx([1.0, 0.382, 0.382**2, 0.382**3])
    # the golden phase's first trial would be x itself (a tie in the authors' code): stop at x
    assert result.step == pytest.approx(0.382**3) and result.decreased and result.n_evals == 4


def test_seed001_line_search_stops_at_budget_when_expanding_forever():
    result = bracket_golden_search(lambda u: -u, 0.0, 1.0, max_evals=4)
    assert result.n_evals == 4 and result.step == pytest.approx(16.0)  # 1, 4, 8, 16


# ---------------------------------------------------------------- quasi-Newton
def closure_for(x, f, log=None):
    def closure(backward=True):
        if x.grad is not None:
            x.grad = None
        with torch.enable_grad():
            loss = f(x)
            if log is not None:
                log.append(backward)
            if backward:
                loss.backward()
        return loss

    return closure


def spd_quadratic(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DT))
    A = q @ torch.diag(torch.logspace(0, 2, n, dtype=DT)) @ q.T  # condition number 100
    b = torch.randn(n, generator=gen, dtype=DT)
    return A, b, torch.linalg.solve(A, b)


@pytest.mark.parametrize("dense", [False, True])
def test_convex_quadratic_in_at_most_n_plus_one_iterations(dense):
    n = 6
    A, b, x_star = spd_quadratic(n)
    x = nn.Parameter(torch.zeros(n, dtype=DT))
    opt = QuasiNewton([x], history_size=n, max_iter=n + 1, line_search_evals=200, line_search_tol=1e-14,
                      tolerance_grad=0.0, tolerance_change=0.0, dense=dense)
    opt.step(closure_for(x, lambda v: 0.5 * v @ A @ v - b @ v))
    assert opt.counts.iterations == n + 1
    torch.testing.assert_close(x.detach(), x_star, rtol=0, atol=1e-4)  # from an error of 1.0


def test_steepest_descent_does_not_finish_the_quadratic_in_n_plus_one():
    """The same budget without curvature pairs (history reset every step) is far from x*."""
    n = 6
    A, b, x_star = spd_quadratic(n)
    x = nn.Parameter(torch.zeros(n, dtype=DT))
    for _ in range(n + 1):
        opt = QuasiNewton([x], line_search_evals=200, line_search_tol=1e-14)
        opt.step(closure_for(x, lambda v: 0.5 * v @ A @ v - b @ v))
    assert float((x.detach() - x_star).norm()) > 1e-2


def rosenbrock(v):
    return ((1 - v[:-1]) ** 2).sum() + 100 * ((v[1:] - v[:-1] ** 2) ** 2).sum()


@pytest.mark.parametrize("start", [[-1.2, 1.0], "random6", "random10"])
def test_matches_scipy_lbfgsb_minima_on_rosenbrock(start):
    if isinstance(start, str):
        dim = int(start.removeprefix("random"))
        start = list(np.random.default_rng(dim).uniform(-2, 2, dim))
    reference = scipy.optimize.minimize(
        lambda v: float(rosenbrock(torch.tensor(v))), start, method="L-BFGS-B",
        jac=lambda v: torch.func.grad(rosenbrock)(torch.tensor(v)).numpy(),
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
    )
    x = nn.Parameter(torch.tensor(start, dtype=DT))
    opt = QuasiNewton([x], max_iter=3000)  # the authors' line-search settings: 6 evaluations, tol 1e-4
    opt.step(closure_for(x, rosenbrock))
    np.testing.assert_allclose(x.detach().numpy(), reference.x, atol=1e-4)
    assert float(rosenbrock(x.detach())) < 1e-8


def test_counts_forward_only_and_plain_closures():
    x = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=DT))
    log: list = []
    opt = QuasiNewton([x], max_iter=5)
    opt.step(closure_for(x, rosenbrock, log))
    counts = opt.counts
    assert counts.iterations == 5 and counts.work.forward_passes == len(log)
    assert counts.work.backward_passes == sum(log) == 5  # one backward per iteration, line search forward-only

    y = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=DT))
    plain = QuasiNewton([y], max_iter=5)
    calls = []

    def closure():
        calls.append(1)
        plain.zero_grad()
        loss = rosenbrock(y)
        loss.backward()
        return loss

    plain.step(closure)
    assert plain.work.forward_passes == plain.work.backward_passes == len(calls) == counts.work.forward_passes
    assert opt.work.as_dict() == {"forward_passes": len(log), "backward_passes": 5, "hvps": 0}
    torch.testing.assert_close(x.detach(), y.detach(), rtol=0, atol=0)


def test_lr_scales_the_first_trial_and_follows_a_scheduler():
    x = nn.Parameter(torch.tensor([3.0, -4.0], dtype=DT))  # g = 2x, ‖g‖ = 10 at the start
    seen = []
    opt = QuasiNewton([x], lr=0.5)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2)
    closure = closure_for(x, lambda v: (v**2).sum())

    def recording(backward=True):
        seen.append(x.detach().clone())
        return closure(backward)

    opt.step(recording)
    first_trial = float((seen[1] - seen[0]).norm())
    assert first_trial == pytest.approx(0.2 * 0.5 * 10.0)
    scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)  # cosine half-way


def train_full_batch(model, opt, data, steps):
    x, y = data
    for _ in range(steps):
        def closure(backward=True):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            if backward:
                loss.backward()
            return loss
        opt.step(closure)


@pytest.mark.slow
@pytest.mark.parametrize("dense", [False, True])
def test_state_dict_resume_continues_identically(dense):
    data = regression_data(32, (3,))
    model = tiny_mlp((3, 5, 1))
    twin = copy.deepcopy(model)
    kwargs = dict(history_size=3, max_iter=2, dense=dense)

    opt = QuasiNewton(model.parameters(), **kwargs)
    train_full_batch(model, opt, data, 7)

    first = QuasiNewton(twin.parameters(), **kwargs)
    train_full_batch(twin, first, data, 4)
    buffer = io.BytesIO()
    torch.save({"model": twin.state_dict(), "optim": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh = tiny_mlp((3, 5, 1), seed=1)
    fresh.load_state_dict(saved["model"])
    second = QuasiNewton(fresh.parameters(), **kwargs)
    second.load_state_dict(saved["optim"])
    train_full_batch(fresh, second, data, 3)

    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)
    assert second.counts == opt.counts and opt.counts.iterations == 14


def test_gradient_tolerance_stops_without_a_step():
    x = nn.Parameter(torch.zeros(3, dtype=DT))
    opt = QuasiNewton([x], max_iter=10)
    opt.step(closure_for(x, lambda v: ((v - 0) ** 2).sum()))
    assert opt.counts.iterations == 0 and opt.work.forward_passes == 1


def test_fixed_step_first_iteration_matches_torch_lbfgs():
    x = nn.Parameter(torch.tensor([0.3, -0.7, 1.1], dtype=DT))
    y = nn.Parameter(x.detach().clone())
    ours = QuasiNewton([x], line_search=None, lr=0.5)
    theirs = torch.optim.LBFGS([y], lr=0.5, max_iter=1)
    f = lambda v: (v**4).sum() + v.sum() ** 2  # noqa: E731
    ours.step(closure_for(x, f))
    theirs.step(closure_for(y, f))
    torch.testing.assert_close(x.detach(), y.detach(), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"history_size": 0}, "history_size"), ({"line_search": "wolfe"}, "line_search"), ({"lr": 0.0}, "lr"),
     ({"line_search_evals": 0}, "line_search_evals"), ({"tolerance_grad": -1.0}, "tolerance_grad")],
)
def test_bad_arguments_raise_one_line_usage_errors(kwargs, name):
    with pytest.raises(UsageError, match=name) as info:
        QuasiNewton([nn.Parameter(torch.zeros(2))], **kwargs)
    assert "\n" not in str(info.value)


def test_one_parameter_group_only():
    with pytest.raises(UsageError, match="one parameter group"):
        QuasiNewton([{"params": [nn.Parameter(torch.zeros(1))]}, {"params": [nn.Parameter(torch.zeros(1))]}])
