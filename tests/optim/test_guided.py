"""GuidedExploration against answers worked by hand on analytic saddles and torch's own optimizers."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import classification_data, cross_entropy_closure, regression_data, tiny_conv_bn, tiny_mlp
from topograph.core import ParamSpec, random_direction
from topograph.errors import UsageError
from topograph.optim import build_optimizer
from topograph.optim.guided import GuidedExploration
from topograph.optim.rolling_ball import RollingBall

DT = torch.float64
TOY = dict(filter_norm=False, ignore_1d=False)  # §2.8: toy tests use absolute σ


def function_closure(opt, x, f):
    def closure(backward: bool = True):
        opt.zero_grad()
        loss = f(x)
        if backward:
            loss.backward()
        return loss

    return closure


def saddle(v):  # x² − y² + y⁴/2: saddle at 0, minima f = −0.5 at (0, ±1)
    return v[0] ** 2 - v[1] ** 2 + 0.5 * v[1] ** 4


def tilted_well(v):  # x⁴ − 2x² + 0.3x
    return (v**4 - 2 * v**2 + 0.3 * v).sum()


# ---------------------------------------------------------------- 1. identity when off
@pytest.mark.parametrize("make_base", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.01),
])
@pytest.mark.parametrize("off", [dict(enabled=False), dict(beta=0.0, explore_every=2),
                                 dict(beta=0.0, explore_every=2, bias="random")])
def test_identity_when_off(make_base, off):
    x, y = classification_data(32, seed=1)
    ref = tiny_mlp((5, 8, 3), dropout=0.2)
    ref_opt = make_base(ref.parameters())
    torch.manual_seed(5)  # dropout masks of the reference run
    for _ in range(7):
        ref_opt.step(cross_entropy_closure(ref_opt, ref, x, y))
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = GuidedExploration(make_base(model.parameters()), **off)
    torch.manual_seed(5)  # the probes must not consume the caller's random numbers
    for _ in range(7):
        opt.step(cross_entropy_closure(opt, model, x, y))
    assert opt.counts.jumps == 0
    if off.get("enabled", True):
        assert opt.counts.events == 4 and opt.counts.probe_forwards == 4 * 9
    for a, b in zip(ref.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_probe_restores_parameters_rng_and_bn_exactly():
    x, y = classification_data(32, seed=1)
    model = tiny_mlp((5, 8, 3), batchnorm=True, dropout=0.2)
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1), sigma=0.3, modules=model)
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    result, dirs = opt.probe(cross_entropy_closure(opt, model, x, y), return_directions=True)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert dirs.shape == (4, sum(p.numel() for p in model.parameters()))
    assert len(result.loss_plus) == 4 and all(abs(s) > 0 for s in result.slopes)
    # filter normalisation: every row of a weight matrix has the norm of the weights' row
    w = model[1].weight.detach().reshape(-1)
    u = dirs[0, : w.numel()].view(8, 5)
    torch.testing.assert_close(u.norm(dim=1), model[1].weight.detach().norm(dim=1), rtol=1e-5, atol=0)
    assert torch.all(dirs[0, w.numel(): w.numel() + 8] == 0)  # 1-D bias ignored


@pytest.mark.parametrize("ignore_1d", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_batched_directions_match_core_random_direction(ignore_1d, dtype):
    """The vectorised draw equals topograph.core.random_direction seed by seed (conv, linear, 1-D)."""
    model = tiny_conv_bn(channels=2).to(dtype)
    params = list(model.parameters())
    opt = GuidedExploration(torch.optim.SGD(params, lr=0.1), n_dirs=3, ignore_1d=ignore_1d)
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    spec = ParamSpec.from_tensors({str(i): p for i, p in enumerate(params)})
    seeds = [11, 12, 40]
    dirs = opt.directions(theta, seeds)
    assert dirs.shape == (3, theta.numel()) and dirs.dtype == dtype
    rtol = 1e-6 if dtype == torch.float32 else 1e-13
    for row, seed in zip(dirs, seeds):
        ref = random_direction(spec, theta, norm="filter", ignore_1d=ignore_1d, seed=seed)
        torch.testing.assert_close(row, ref, rtol=rtol, atol=0)
        torch.testing.assert_close(opt.directions(theta, [seed])[0], row, rtol=0, atol=0)
        for _, shape, sl in spec.items():  # every filter has the norm of the weights' filter (up to the ε)
            if len(shape) >= 2:
                torch.testing.assert_close(row[sl].view(shape[0], -1).norm(dim=1),
                                           theta[sl].view(shape[0], -1).norm(dim=1), rtol=1e-5, atol=0)
            else:
                assert torch.equal(row[sl], torch.zeros_like(row[sl]) if ignore_1d else theta[sl])


# ---------------------------------------------------------------- 2./3. finite differences and ES
def quadratic(d=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=gen, dtype=DT)
    h = (a + a.T) / 2  # indefinite
    b = torch.randn(d, generator=gen, dtype=DT)
    x = nn.Parameter(torch.randn(d, generator=gen, dtype=DT))
    return h, b, x, (lambda v: 0.5 * v @ h @ v + b @ v)


@pytest.mark.parametrize("filter_norm", [False, True])
def test_finite_differences_exact_on_quadratic(filter_norm):
    h, b, x, f = quadratic()
    if filter_norm:  # a 2-D tensor so that filter normalisation applies
        x = nn.Parameter(x.detach().clone().view(1, 5))
        f0 = f
        f = lambda v: f0(v.view(-1))  # noqa: E731
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.1), n_dirs=6, sigma=0.01, filter_norm=filter_norm,
                            ignore_1d=False)
    result, dirs = opt.probe(function_closure(opt, x, f), return_directions=True)
    g = h @ x.detach().view(-1) + b
    torch.testing.assert_close(torch.tensor(result.slopes, dtype=DT), dirs @ g, rtol=1e-6, atol=0)
    curv = torch.einsum("ni,ij,nj->n", dirs, h, dirs)
    torch.testing.assert_close(torch.tensor(result.curvatures, dtype=DT), curv, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(torch.tensor(result.kappas, dtype=DT), curv / dirs.square().sum(1), rtol=1e-6,
                               atol=1e-9)


def test_es_gradient_unbiased():
    h, b, x, f = quadratic(d=3, seed=2)
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.1), n_dirs=1000, sigma=0.05, **TOY)
    closure = function_closure(opt, x, f)
    samples, estimates = [], []
    for _ in range(3):  # 3000 directions
        result, dirs = opt.probe(closure, return_directions=True)
        samples.append(torch.tensor(result.slopes, dtype=DT)[:, None] * dirs)
        estimates.append(opt.es_gradient(result))
    samples = torch.cat(samples)
    torch.testing.assert_close(torch.stack(estimates).mean(0), samples.mean(0), rtol=1e-10, atol=1e-12)
    g = h @ x.detach() + b
    stderr = samples.std(0) / samples.shape[0] ** 0.5
    assert torch.all((samples.mean(0) - g).abs() < 4 * stderr), (samples.mean(0), g, stderr)


# ---------------------------------------------------------------- 4. saddle escape
def steps_to(opt, x, f, level, budget):
    closure = function_closure(opt, x, f)
    for t in range(1, budget + 1):
        opt.step(closure)
        if float(f(x.detach())) < level:
            return t
    return None


def test_gd_reference_on_the_saddle():
    x = nn.Parameter(torch.tensor([1.0, 1e-6], dtype=DT))
    assert steps_to(torch.optim.SGD([x], lr=0.05), x, saddle, -0.4, 400) == 146  # plain GD's escape time, the reference below
    x = nn.Parameter(torch.zeros(2, dtype=DT))
    assert steps_to(torch.optim.SGD([x], lr=0.05), x, saddle, -0.4, 300) is None
    assert torch.all(x == 0)  # GD never moves from the exact saddle


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guided_exploration_escapes_the_saddle(seed):
    x = nn.Parameter(torch.zeros(2, dtype=DT))
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.05), explore_every=1, sigma=0.1, seed=seed, **TOY)
    t = steps_to(opt, x, saddle, -0.4, 146)
    assert t is not None and opt.counts.mode_counts["saddle"] >= 1 and opt.counts.jumps >= 1
    x = nn.Parameter(torch.tensor([1.0, 1e-6], dtype=DT))
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.05), explore_every=1, sigma=0.1, seed=seed, **TOY)
    t = steps_to(opt, x, saddle, -0.4, 146)
    assert t is not None and t <= 146 // 3


def test_lanczos_curvature_and_saddle_jump():
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=DT))
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=DT))
    h = q @ h @ q.T
    x = nn.Parameter(torch.zeros(4, dtype=DT))
    f = lambda v: 0.5 * v @ h @ v  # noqa: E731
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.05), explore_every=1, hvp_iters=4, tau_c=1e9, **TOY)
    opt.step(function_closure(opt, x, f))  # τ_c huge: FD curvature never counts, Lanczos does not either
    assert opt.last_probe.lanczos_min == pytest.approx(-2.0, abs=1e-10)
    assert opt.last_probe.lanczos_max == pytest.approx(3.0, abs=1e-10)
    assert opt.work.hvps == 4 and opt.counts.mode_counts["minimum"] == 1  # (jumps to its best probe)
    opt.tau_c = 0.0
    with torch.no_grad():
        x.zero_()
    jumps = opt.counts.jumps
    opt.step(function_closure(opt, x, f))  # g = 0: the step is the jump alone
    assert opt.counts.mode_counts["saddle"] == 1 and opt.counts.jumps == jumps + 1
    assert float(f(x.detach())) < 0
    v_min = q[:, 2]  # the jump follows the Lanczos v_min
    assert abs(float(x.detach() @ v_min)) == pytest.approx(float(x.detach().norm()), rel=1e-8)


# ---------------------------------------------------------------- 5. global search, double well
@pytest.mark.parametrize("sigma_max, global_basin", [(4.0, True), (1.0, False)])
def test_double_well_global_search(sigma_max, global_basin):
    x = nn.Parameter(torch.tensor([0.9601495555191055], dtype=DT))  # the local minimum
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.05), explore_every=1, sigma=0.1, sigma_growth=2.0,
                            sigma_max=sigma_max, **TOY)
    closure = function_closure(opt, x, tilted_well)
    for _ in range(150):
        opt.step(closure)
    if global_basin:
        assert float(x.detach()) == pytest.approx(-1.0355787140888537, abs=1e-6)
        assert opt.counts.jumps >= 1
    else:
        assert float(x.detach()) == pytest.approx(0.9601495555191055, abs=1e-9)
        assert opt.counts.jumps == 0 and opt.counts.sigma == 1.0


# ---------------------------------------------------------------- 6. convex quadratic
def test_convex_quadratic_converges_like_the_base():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=gen, dtype=DT)
    h = a @ a.T / 6 + torch.eye(6, dtype=DT)
    b = torch.randn(6, generator=gen, dtype=DT)
    x_star = torch.linalg.solve(h, -b)
    f = lambda v: 0.5 * v @ h @ v + b @ v  # noqa: E731
    for wrap in (False, True):
        x = nn.Parameter(torch.zeros(6, dtype=DT))
        base = torch.optim.SGD([x], lr=0.2)
        opt = GuidedExploration(base, explore_every=1, beta=0.3, **TOY) if wrap else base
        closure = function_closure(opt, x, f)
        for _ in range(160):
            opt.step(closure)
        assert torch.linalg.vector_norm(x.detach() - x_star) < 1e-8
    assert opt.counts.mode_counts["slope"] > 0 and opt.counts.mode_counts["minimum"] > 0


# ---------------------------------------------------------------- 7. random-bias ablation (§2.7 control b)
def test_random_bias_ignores_the_probe_losses():
    """Two quadratics with the same gradient at 0 but different curvature (so different probe
    losses): the random-bias step is the same for both and equals g − β‖g‖ r/‖r‖ by hand; the
    probe-guided step differs between them; the probe cost is the same."""
    gen = torch.Generator().manual_seed(4)
    b = torch.randn(6, generator=gen, dtype=DT)
    curvatures = []
    for _ in range(2):
        m = torch.randn(6, 6, generator=gen, dtype=DT)
        curvatures.append(0.1 * (m + m.T))
    lr, beta = 0.1, 0.5
    steps, probes, costs = {}, {}, {}
    for bias in ("random", "probes"):
        for j, h in enumerate(curvatures):
            x = nn.Parameter(torch.zeros(6, dtype=DT))
            opt = GuidedExploration(torch.optim.SGD([x], lr=lr), explore_every=1, sigma=0.05, beta=beta,
                                    bias=bias, seed=3, **TOY)
            opt.step(function_closure(opt, x, lambda v, h=h: 0.5 * v @ h @ v + b @ v))
            assert opt.counts.mode_counts["slope"] == 1
            steps[bias, j], probes[bias, j], costs[bias, j] = x.detach().clone(), opt.last_probe, opt.counts
    assert probes["random", 0].loss_plus != probes["random", 1].loss_plus  # the probes saw different losses
    assert probes["random", 0] == probes["probes", 0]  # the same probes either way
    assert torch.equal(steps["random", 0], steps["random", 1])
    assert not torch.allclose(steps["probes", 0], steps["probes", 1])
    assert costs["random", 0] == costs["probes", 0]
    # by hand: ∇_e = g − β‖g‖ r/‖r‖ with r the event's random direction (g = b at 0)
    r = opt.directions(torch.zeros(6, dtype=DT), [opt.random_bias_seed(0)])[0]
    expected = -lr * (b - beta * b.norm() * r / r.norm())
    torch.testing.assert_close(steps["random", 0], expected, rtol=0, atol=1e-14)
    assert not torch.allclose(steps["random", 0], -lr * b)  # the bias was applied
    for i in range(opt.n_dirs):  # r is none of the probe directions
        u = opt.directions(torch.zeros(6, dtype=DT), [opt.event_seeds(0)[1] + i])[0]
        assert abs(float(u @ r) / float(u.norm() * r.norm())) < 0.99
    # a different event draws a different direction
    assert opt.random_bias_seed(1) != opt.random_bias_seed(0)


# ---------------------------------------------------------------- contract
def test_event_seeds_are_derived_from_seed_and_event_alone():
    def direct(seed, event):
        a, b = np.random.SeedSequence((seed, event)).generate_state(2, dtype=np.uint64)
        return int(a) % (2**63 - 1), int(b) % (2**63 - 1)

    x = nn.Parameter(torch.zeros(3, dtype=DT))
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.1), seed=5)
    for event in (37, 0, 15, 16, 38, 37, 100):  # a resumed run starts mid-way
        assert opt.event_seeds(event) == direct(5, event)
    opt.seed = 6  # another seed: derived again
    assert opt.event_seeds(37) == direct(6, 37) != direct(5, 37)


@pytest.mark.slow
def test_state_dict_round_trip_resumes_identically():
    x, y = classification_data(32, seed=1)

    def run(model, opt, steps):
        torch.manual_seed(11)
        for _ in range(steps):
            opt.step(cross_entropy_closure(opt, model, x, y))

    make = lambda m: GuidedExploration(torch.optim.Adam(m.parameters(), lr=0.01), explore_every=2,  # noqa: E731
                                       beta=0.5, sigma=0.1)
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = make(model)
    run(model, opt, 5)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    run(model, opt, 6)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    model2 = tiny_mlp((5, 8, 3), seed=9, dropout=0.2)
    model2.load_state_dict(ck["model"])
    opt2 = make(model2)
    opt2.load_state_dict(ck["opt"])
    run(model2, opt2, 6)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert opt.counts == opt2.counts
    with pytest.raises(UsageError, match="'base' and 'guided'"):
        opt2.load_state_dict(ck["model"])


def test_lr_scheduler_acts_on_the_base():
    x, y = classification_data(32, seed=1)
    ref = tiny_mlp((5, 8, 3), dropout=0.2)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(ref_opt, T_0=3)
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), enabled=False)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3)
    torch.manual_seed(0)
    for _ in range(5):
        ref_opt.step(cross_entropy_closure(ref_opt, ref, x, y))
        ref_sched.step()
    torch.manual_seed(0)
    for _ in range(5):
        opt.step(cross_entropy_closure(opt, model, x, y))
        sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"] != 0.1
    for a, b in zip(ref.parameters(), model.parameters()):
        assert torch.equal(a, b)
    ge = GuidedExploration(torch.optim.Adam(model.parameters(), lr=0.1), explore_every=1)
    step = torch.optim.lr_scheduler.StepLR(ge, step_size=1, gamma=0.5)
    ge.step(cross_entropy_closure(ge, model, x, y))
    step.step()
    assert ge.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_wraps_rolling_ball_and_lookahead_and_counts():
    x, y = classification_data(32, seed=1)
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = GuidedExploration(RollingBall(model.parameters(), lr=0.1, radius=0.5, proj_lr=0.01, proj_steps=3),
                            explore_every=2, lookahead_alpha=0.5, sigma=0.1)
    for _ in range(4):
        opt.step(cross_entropy_closure(opt, model, x, y))
    c = opt.counts
    # per step: 1 F/B (GE) + 3 RBO inner F/B; per event (2): 9 probe F (+1 F/B look-ahead if SLOPE improves)
    lookaheads = c.work.backward_passes - 4 * 4
    assert c.probe_forwards == 18 and 0 <= lookaheads <= 2
    assert c.work.forward_passes == 4 * 4 + 18 + lookaheads


def test_zero_grad_as_torch():
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1))
    x, y = classification_data(32, seed=1)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and torch.all(p.grad == 0) for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_registry_builds_guided_exploration():
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = build_optimizer("guided-exploration", model.parameters(), model=model, base={"name": "adam", "lr": 0.01},
                          explore_every=3)
    assert isinstance(opt.base_optimizer, torch.optim.Adam) and opt.explore_every == 3


def test_usage_errors():
    x = nn.Parameter(torch.zeros(2, dtype=DT))
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.1))  # filter-normalised, 1-D ignored ⇒ zero
    with pytest.raises(UsageError, match="probe direction is zero"):
        opt.step(function_closure(opt, x, saddle))
    assert torch.all(x == 0)
    with pytest.raises(UsageError, match="needs a closure"):
        opt.step()
    with pytest.raises(UsageError, match="sigma"):
        GuidedExploration(torch.optim.SGD([x], lr=0.1), sigma=0)
    with pytest.raises(UsageError, match="bias must be one of 'probes', 'random'"):
        GuidedExploration(torch.optim.SGD([x], lr=0.1), bias="noise")
    with pytest.raises(UsageError, match="explore_every"):
        GuidedExploration(torch.optim.SGD([x], lr=0.1), explore_every=0)
    with pytest.raises(UsageError, match="torch.optim.Optimizer"):
        GuidedExploration([x])


def test_gradient_norm_ema_equals_a_naive_ema_of_the_step_gradients():
    model = tiny_mlp((5, 7, 1), seed=3)
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.05), explore_every=4)
    x, y = regression_data(40, seed=3)
    norms = []

    def closure(backward=True):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        if backward:
            loss.backward()
            norms.append(float(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().norm()))
        return loss

    for _ in range(11):  # ends between events: the pending norms are folded when read
        opt.step(closure)
    ema = norms[0]
    for g in norms[1:]:
        ema = 0.9 * ema + 0.1 * g
    assert len(norms) == 11
    assert opt.counts.grad_norm_ema == pytest.approx(ema, rel=1e-6)
    state = opt.state_dict()["guided"]
    assert float(state["grad_norm_ema"]) == pytest.approx(ema, rel=1e-6)


def test_a_saddle_seen_only_by_lanczos_takes_no_jump_that_does_not_improve():
    """At a critical point whose only negative curvature is along e_0 and is outweighed at the
    probe radius by a quartic term, neither the Lanczos v_min move nor the best finite-difference
    probe improves on L₀: GE classifies a saddle and takes no jump (it must not move uphill)."""
    d = 12
    eig = torch.full((d,), 2.0, dtype=DT)
    eig[0] = -1e-3

    def f(v):
        return 0.5 * (eig * v * v).sum() + 50.0 * v[0] ** 4

    x = nn.Parameter(torch.zeros(d, dtype=DT))
    opt = GuidedExploration(torch.optim.SGD([x], lr=0.1), explore_every=1, hvp_iters=d, sigma=0.05, **TOY)
    opt.step(function_closure(opt, x, f))
    assert opt.last_probe.lanczos_min == pytest.approx(-1e-3, rel=1e-6)
    assert min(opt.last_probe.kappas) > 0  # the probes see positive curvature only
    assert opt.counts.mode_counts["saddle"] == 1 and opt.counts.jumps == 0
    assert torch.equal(x.detach(), torch.zeros(d, dtype=DT))  # g = 0 and no jump: θ stays
