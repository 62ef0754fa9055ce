"""RollingBall against closed-form steps worked by hand (Belgoumri et al. 2025) and torch's SGD."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

from tests.helpers import regression_data, tiny_mlp
from topograph.core import freeze_bn_stats
from topograph.errors import UsageError
from topograph.optim.rolling_ball import RollingBall

DT = torch.float64


def analytic_closure(x: nn.Parameter, f, grad):
    """closure(backward) for f with an analytic gradient (fast, exact)."""

    def closure(backward: bool = True):
        with torch.no_grad():
            loss = f(x)
            if backward:
                x.grad = grad(x).clone()
        return loss

    return closure


def linear_problem(d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, generator=gen, dtype=DT)
    x = nn.Parameter(torch.randn(d, generator=gen, dtype=DT))
    return a, x, analytic_closure(x, lambda v: a @ v + 0.7, lambda v: a)


# ---------------------------------------------------------------- linear loss ⇒ GD
@pytest.mark.parametrize("radius", [0.0, 0.1, 1.0, 10.0])
def test_linear_loss_is_gd_with_gd_init_for_any_radius(radius):
    a, x, closure = linear_problem()
    x0 = x.detach().clone()
    opt = RollingBall([x], lr=0.3, radius=radius, proj_lr=0.05, proj_steps=7, proj_init="gd")
    opt.step(closure)
    torch.testing.assert_close(x.detach(), x0 - 0.3 * a, rtol=0, atol=1e-13)


@pytest.mark.parametrize("radius", [0.0, 0.1, 1.0, 10.0])
def test_linear_loss_long_inner_solve_from_current_point_reaches_gd(radius):
    a, x, closure = linear_problem()
    x0 = x.detach().clone()
    gamma = 1.0 / (1.0 + float(a @ a))  # contraction 1 − γ(1+‖a‖²) = 0 along a
    opt = RollingBall([x], lr=0.3, radius=radius, proj_lr=gamma, proj_steps=3, proj_init="current")
    opt.step(closure)
    torch.testing.assert_close(x.detach(), x0 - 0.3 * a, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("gamma", "steps", "g2", "expected"), [(1e-3, 100, 2.18, 0.2728), (0.05, 20, 2.18, 0.9687)])
def test_truncated_solver_step_factor(gamma, steps, g2, expected):
    a = torch.tensor([math.sqrt(g2 / 2), -math.sqrt(g2 / 2)], dtype=DT)  # ‖a‖² = g2
    x = nn.Parameter(torch.tensor([0.4, -1.1], dtype=DT))
    x0 = x.detach().clone()
    opt = RollingBall([x], lr=0.5, radius=2.0, proj_lr=gamma, proj_steps=steps)
    opt.step(analytic_closure(x, lambda v: a @ v, lambda v: a))
    factor = 1 - (1 - gamma * (1 + g2)) ** steps
    torch.testing.assert_close(x.detach(), x0 - 0.5 * factor * a, rtol=1e-12, atol=1e-14)
    assert factor == pytest.approx(expected, abs=1e-4)  # 1 − (1 − γ(1 + ‖a‖²))^T, worked by hand
    assert opt.diagnostics.step_ratio == pytest.approx(factor, rel=1e-10)
    assert opt.diagnostics.inner_steps == steps


def test_gd_init_with_zero_inner_steps_is_bitwise_sgd_with_scheduler():
    model = tiny_mlp((5, 8, 1))
    twin = copy.deepcopy(model)
    groups = lambda m: [{"params": m[1].parameters()}, {"params": m[3].parameters(), "lr": 0.05}]  # noqa: E731
    rbo = RollingBall(groups(model), lr=0.2, radius=3.0, proj_steps=0, proj_init="gd")
    sgd = torch.optim.SGD(groups(twin), lr=0.2)
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3) for o in (rbo, sgd)]
    x, y = regression_data(32)
    for _ in range(7):
        for net, opt in ((model, rbo), (twin, sgd)):
            def closure(net=net, opt=opt):
                opt.zero_grad()
                loss = nn.functional.mse_loss(net(x), y)
                loss.backward()
                return loss
            opt.step(closure)
        for s in schedulers:
            s.step()
    assert rbo.param_groups[1]["lr"] == sgd.param_groups[1]["lr"] != 0.05
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_per_group_learning_rates_keep_linear_exactness():
    a = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    x1 = nn.Parameter(torch.tensor([0.1, 0.2], dtype=DT))
    x2 = nn.Parameter(torch.tensor([-0.3], dtype=DT))

    def closure(backward=True):
        with torch.no_grad():
            if backward:
                x1.grad, x2.grad = a[:2].clone(), a[2:].clone()
            return a[:2] @ x1 + a[2:] @ x2

    opt = RollingBall([{"params": [x1], "lr": 0.1}, {"params": [x2], "lr": 0.4}], radius=1.5, proj_lr=0.02,
                      proj_steps=2000)
    opt.step(closure)
    torch.testing.assert_close(x1.detach(), torch.tensor([0.1, 0.2], dtype=DT) - 0.1 * a[:2], rtol=0, atol=1e-10)
    torch.testing.assert_close(x2.detach(), torch.tensor([-0.3], dtype=DT) - 0.4 * a[2:], rtol=0, atol=1e-10)


def test_radius_must_agree_across_groups():
    p, q = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = RollingBall([{"params": [p]}, {"params": [q], "radius": 2.0}])
    with pytest.raises(UsageError, match="radius"):
        opt.step(lambda: (p + q).sum())


# ---------------------------------------------------------------- nonlinear known answers
@pytest.mark.slow
def test_small_step_limit_deviation_is_quadratic_in_lr():
    """ρ = 0, converged projection: ‖step + ηg‖ = O(η²) (≈ 80 η² at this point)."""

    def f(v):
        return (1 - v[0]) ** 2 + 5 * (v[1] - v[0] ** 2) ** 2

    def grad(v):
        return torch.stack([-2 * (1 - v[0]) - 20 * v[0] * (v[1] - v[0] ** 2), 10 * (v[1] - v[0] ** 2)])

    deviations = {}
    for eta in (1e-2, 1e-3, 1e-4):
        x = nn.Parameter(torch.tensor([-1.0, 1.0], dtype=DT))
        g = grad(x.detach())
        opt = RollingBall([x], lr=eta, radius=0.0, proj_lr=0.05, proj_steps=2000, proj_init="gd", proj_tol=1e-13)
        opt.step(analytic_closure(x, f, grad))
        deviations[eta] = float((x.detach() - (torch.tensor([-1.0, 1.0], dtype=DT) - eta * g)).norm())
    for eta in (1e-3, 1e-4):
        assert 50 < deviations[eta] / eta**2 < 120
    assert deviations[1e-3] / deviations[1e-2] < 0.02  # quadratic, not linear (0.1)


@pytest.mark.parametrize(("radius", "expected"), [(0.0, -4.00e-5), (0.1, -6.67e-5), (0.2, -2.00e-4), (0.24, -1.00e-3)])
def test_preconditioning_near_a_minimum_1d(radius, expected):
    """f = 2x², x = 1e-3, η = 0.01: step ≈ −ηHx/(1 − ρH) (H = 4)."""
    x = nn.Parameter(torch.tensor([1e-3], dtype=DT))
    opt = RollingBall([x], lr=0.01, radius=radius, proj_lr=0.9, proj_steps=3000, proj_init="gd", proj_tol=1e-14)
    opt.step(analytic_closure(x, lambda v: 2 * (v**2).sum(), lambda v: 4 * v))
    step = float(x.detach()) - 1e-3
    assert step == pytest.approx(-0.01 * 4 * 1e-3 / (1 - radius * 4), rel=2e-3)
    assert step == pytest.approx(expected, rel=5e-3)


def test_preconditioning_near_a_minimum_2d():
    h = torch.tensor([1.0, 10.0], dtype=DT)
    x = nn.Parameter(torch.tensor([1e-3, 1e-3], dtype=DT))
    opt = RollingBall([x], lr=0.01, radius=0.05, proj_lr=0.5, proj_steps=3000, proj_init="gd", proj_tol=1e-14)
    opt.step(analytic_closure(x, lambda v: 0.5 * (h * v * v).sum(), lambda v: h * v))
    step = x.detach() - 1e-3
    predicted = -0.01 * h * 1e-3 / (1 - 0.05 * h)  # −η (I − ρH)⁻¹ H x
    torch.testing.assert_close(step, predicted, rtol=2e-3, atol=0)
    torch.testing.assert_close(step, torch.tensor([-1.0525e-5, -1.9998e-4], dtype=DT), rtol=1e-3, atol=0)


def rbo_on_quadratic(radius, steps, eta=0.05):
    x = nn.Parameter(torch.tensor([0.5], dtype=DT))
    opt = RollingBall([x], lr=eta, radius=radius, proj_lr=0.2, proj_steps=400, proj_init="gd", proj_tol=1e-12,
                      same_randomness=False)
    closure = analytic_closure(x, lambda v: 2 * (v**2).sum(), lambda v: 4 * v)
    trace = []
    for _ in range(steps):
        opt.step(closure)
        trace.append(abs(float(x.detach())))
    return trace


@pytest.mark.slow
def test_phase_transition_on_quadratic_at_inverse_curvature():
    """f = 2θ² (1/A = 0.25): ρ = 0.2 converges; ρ = 0.3, 0.5 rock on a 2-cycle (§1.2.1 table)."""
    assert rbo_on_quadratic(0.2, 40)[-1] < 1e-6
    assert min(rbo_on_quadratic(0.3, 40)[20:]) == pytest.approx(0.189, abs=2e-3)
    assert min(rbo_on_quadratic(0.5, 15)[5:]) == pytest.approx(0.3702, abs=1e-4)


def test_loss_scale_changes_the_trajectory():
    def run(scale):
        x = nn.Parameter(torch.tensor([1.0, -0.5], dtype=DT))
        opt = RollingBall([x], lr=0.05, radius=0.5, proj_lr=0.05, proj_steps=20, loss_scale=scale)
        closure = analytic_closure(x, lambda v: (v**2).sum() + v[0] * v[1], lambda v: 2 * v + v.flip(0))
        for _ in range(3):
            opt.step(closure)
        return x.detach().clone()

    assert not torch.allclose(run(1.0), run(10.0), atol=1e-6)


# ---------------------------------------------------------------- the training contract
def make_batches(n, seed=1):
    """``n`` regression minibatches of 16 samples with 4 inputs."""
    return [regression_data(16, (4,), seed=seed + i) for i in range(n)]


def train(model, opt, batches, log=None):
    for index, (x, y) in enumerate(batches):
        def closure(backward=True, index=index, x=x, y=y):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            if log is not None:
                log.append((index, float(loss.detach())))
            if backward:
                loss.backward()
            return loss
        opt.step(closure)


def test_closure_called_one_plus_k_times_on_the_same_batch():
    model = tiny_mlp((4, 6, 1))
    opt = RollingBall(model.parameters(), lr=0.1, radius=1.0, proj_lr=0.01, proj_steps=5)
    log: list = []
    train(model, opt, make_batches(3), log)
    assert [index for index, _ in log] == [0] * 6 + [1] * 6 + [2] * 6
    d = opt.diagnostics
    assert (d.step, opt.work.forward_passes, opt.work.backward_passes, d.inner_steps) == (3, 18, 18, 5)
    assert opt.work.as_dict() == {"forward_passes": 18, "backward_passes": 18, "hvps": 0}


def test_same_dropout_masks_for_all_inner_evaluations():
    """proj_lr = 0 keeps φ = θ_t: the 1 + K losses agree only if the dropout masks do."""
    for same, expect_equal in ((True, True), (False, False)):
        model = tiny_mlp((4, 6, 1), dropout=0.5)
        opt = RollingBall(model.parameters(), lr=0.1, proj_lr=0.0, proj_steps=4, same_randomness=same)
        log: list = []
        train(model, opt, make_batches(1), log)
        losses = [loss for _, loss in log]
        assert (len(set(losses)) == 1) is expect_equal


def test_a_step_advances_the_callers_generator_by_one_draw_and_steps_differ():
    """The step's seed is one draw from the caller's generator (its evaluations run inside
    fork_rng and leave it alone), so the generator advances as by one draw, and two steps on the
    same batch see different masks."""
    model = tiny_mlp((4, 6, 1), dropout=0.5)
    opt = RollingBall(model.parameters(), lr=0.0, proj_lr=0.0, proj_steps=3)
    log: list = []
    batch = make_batches(1)
    torch.manual_seed(123)
    train(model, opt, batch, log)
    after_one_step = torch.get_rng_state()
    torch.manual_seed(123)
    torch.randint(0, 2**62, (1,))  # what the step draws
    assert torch.equal(after_one_step, torch.get_rng_state())
    train(model, opt, batch, log)  # lr 0: the same θ, the same batch — only the masks change
    first, second = log[0][1], log[-1][1]
    assert first != second


def test_batchnorm_statistics_updated_once_per_step():
    model = tiny_mlp((4, 6, 1), batchnorm=True)
    reference = copy.deepcopy(model)
    batches = make_batches(1)
    opt = RollingBall(model.parameters(), lr=0.1, proj_lr=0.01, proj_steps=4, modules=model)
    train(model, opt, batches)
    reference(batches[0][0])  # one forward at θ_t on the batch
    assert int(model[2].num_batches_tracked) == 1
    torch.testing.assert_close(model[2].running_mean, reference[2].running_mean)
    torch.testing.assert_close(model[2].running_var, reference[2].running_var)

    unprotected = tiny_mlp((4, 6, 1), batchnorm=True)
    opt = RollingBall(unprotected.parameters(), lr=0.1, proj_lr=0.01, proj_steps=4)
    train(unprotected, opt, batches)
    assert int(unprotected[2].num_batches_tracked) == 5


def test_freeze_bn_stats_restores_cumulative_average_buffers():
    bn = nn.BatchNorm1d(3, momentum=None)
    bn(torch.randn(8, 3))
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    with freeze_bn_stats(bn):
        bn(torch.randn(8, 3) + 5)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key])


def test_state_dict_resume_continues_identically():
    torch.manual_seed(0)
    batches = make_batches(5)
    kwargs = dict(lr=0.2, radius=0.5, proj_lr=0.02, proj_steps=3)

    model = tiny_mlp((4, 6, 1), dropout=0.2)
    start = copy.deepcopy(model.state_dict())
    torch.manual_seed(7)
    opt = RollingBall(model.parameters(), **kwargs)
    train(model, opt, batches)

    resumed = tiny_mlp((4, 6, 1), dropout=0.2)
    resumed.load_state_dict(start)
    torch.manual_seed(7)
    first = RollingBall(resumed.parameters(), **kwargs)
    train(resumed, first, batches[:3])
    buffer = io.BytesIO()
    torch.save({"model": resumed.state_dict(), "optim": first.state_dict(), "rng": torch.get_rng_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh = tiny_mlp((4, 6, 1), seed=1, dropout=0.2)  # another start, as a new process would make
    fresh.load_state_dict(saved["model"])
    second = RollingBall(fresh.parameters(), **kwargs)
    second.load_state_dict(saved["optim"])
    torch.set_rng_state(saved["rng"])
    train(fresh, second, batches[3:])

    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)
    assert second.diagnostics.step == 5
    assert second.work.forward_passes == opt.work.forward_passes == 20


def test_proj_tol_stops_the_inner_loop_early():
    a, x, closure = linear_problem()
    calls = []
    opt = RollingBall([x], lr=0.1, radius=1.0, proj_lr=0.01, proj_steps=50, proj_init="gd", proj_tol=1e-8)
    opt.step(lambda backward=True: calls.append(1) or closure(backward))
    assert len(calls) == 2 and opt.diagnostics.inner_steps == 1
    assert opt.diagnostics.proj_residual < 1e-12


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"lr": -1.0}, "lr"), ({"radius": -0.1}, "radius"), ({"proj_steps": 2.5}, "proj_steps"),
     ({"proj_init": "zero"}, "proj_init"), ({"loss_scale": 0.0}, "loss_scale"), ({"proj_tol": -1.0}, "proj_tol")],
)
def test_bad_arguments_raise_one_line_usage_errors(kwargs, name):
    with pytest.raises(UsageError, match=name) as info:
        RollingBall([nn.Parameter(torch.zeros(2))], **kwargs)
    assert "\n" not in str(info.value)


def test_step_without_closure_is_a_usage_error():
    opt = RollingBall([nn.Parameter(torch.zeros(2))])
    with pytest.raises(UsageError, match="closure"):
        opt.step()
