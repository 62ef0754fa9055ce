"""Known-answer tests for barriers and path finders (algorithms.md §3.8).

References are independent of the code under test: analytic landscapes with stationary points
located here by Newton's method on autograd derivatives, the paper's Algorithm 2 gradient written
out by hand, and naive per-point loops over deep copies of the model.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from topograph.core import FunctionObjective, Objective
from topograph.errors import UsageError
from topograph.paths import (
    BezierPath, CurveFinder, FourierPath, FourierPathFinder, NEBPathFinder, PathEvaluator,
    PolylinePath, linear_barrier, profile_path,
)

D = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """These problems are tiny: one intra-op thread avoids thread hand-off overhead."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- analytic landscapes
def _analytic(name):
    """The landscape from topograph.data.analytic when it exists, else the same formula here."""
    try:
        from topograph.data.analytic import get_landscape

        return get_landscape(name).f
    except (ImportError, KeyError, ValueError):
        return FALLBACK[name]


def toy(w):  # arXiv:2602.21276 Fig. 3 (C = 1.0190055296306975 as in the toy notebook)
    x, y = w[..., 0], w[..., 1]

    def g(cx, cy, a):
        return torch.exp(-a * ((x - cx) ** 2 + (y - cy) ** 2))

    return -g(-0.5, -0.5, 3) - g(0.5, 0.0, 3) + g(-0.2, -0.4, 15) + g(0.0, 0.3, 15) + 1.0190055296306975


def muller_brown(w):
    x, y = w[..., 0], w[..., 1]
    terms = [(-200, -1, 0, -10, 1, 0), (-100, -1, 0, -10, 0, 0.5),
             (-170, -6.5, 11, -6.5, -0.5, 1.5), (15, 0.7, 0.6, 0.7, -1, 1)]
    return sum(A * torch.exp(a * (x - x0) ** 2 + b * (x - x0) * (y - y0) + c * (y - y0) ** 2)
               for A, a, b, c, x0, y0 in terms)


def double_well(w):
    return (w[..., 0] ** 2 - 1) ** 2 + w[..., 1] ** 2


def curved_double_well(w):
    x, y = w[..., 0], w[..., 1]
    return (x ** 2 - 1) ** 2 + 2 * (y - 0.8 * (1 - x ** 2)) ** 2


FALLBACK = {"four-gaussian-toy": toy, "muller-brown": muller_brown, "double-well": double_well,
            "curved-double-well": curved_double_well}


def newton_stationary(f, x0, iters=50):
    """A stationary point of f near x0 by Newton's method on autograd derivatives."""
    x = torch.tensor(x0, dtype=D)
    for _ in range(iters):
        g = torch.autograd.functional.jacobian(f, x)
        h = torch.autograd.functional.hessian(f, x)
        x = x - torch.linalg.solve(h, g)
    return x, float(f(x))


@pytest.fixture(scope="module")
def toy_setup():
    f = _analytic("four-gaussian-toy")
    saddle, h_saddle = newton_stationary(f, [-0.1647, -0.0699])
    eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, saddle))
    assert eig[0] < 0 < eig[1]  # an index-1 saddle
    a = torch.tensor([-0.62, -0.54], dtype=D)  # the paper's endpoints
    b = torch.tensor([0.49, -0.02], dtype=D)
    return FunctionObjective(f, 2), a, b, h_saddle


@pytest.fixture(scope="module")
def mb_setup():
    f = _analytic("muller-brown")
    a, va = newton_stationary(f, [-0.558, 1.442])
    b, _ = newton_stationary(f, [0.623, 0.028])
    _, v_saddle = newton_stationary(f, [-0.822, 0.624])
    scaled = FunctionObjective(lambda w: (f(w) - va) / 100.0, 2)  # the scale of algorithms.md App. A
    return scaled, a, b, va, v_saddle


# ---------------------------------------------------------------- path families
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


# ---------------------------------------------------------------- the paper's toy (Fig. 3)
def test_toy_straight_line_height(toy_setup):
    obj, a, b, _ = toy_setup
    r = linear_barrier(obj, a, b, points=1001)
    assert abs(r.height - 1.102) <= 1e-3
    assert r.barrier == pytest.approx(r.height - max(float(toy(a)), float(toy(b))))
    assert 0.2 < r.argmax_t < 0.8 and r.batchnorm is None


@pytest.mark.parametrize("kind,low,high", [("softmax", 0.0, 0.63), ("squared", 0.64, 0.66), ("sum", 0.66, 0.74)])
def test_toy_fourier_reductions(toy_setup, kind, low, high):
    obj, a, b, h_saddle = toy_setup
    finder = FourierPathFinder(points=100, reduction=kind, steps=500, lr=0.01, reg=0.1, temperature=0.03,
                               progress=False)
    r = finder.find(obj, a, b)
    assert len(r.t) == finder.dense_points or len(r.t) == 10 * 99 + 1
    assert r.height >= h_saddle - 1e-9  # no continuous path from A to B stays below the saddle
    assert low <= r.height <= high
    ends = r.path.points([0.0, 1.0])  # endpoints never moved
    assert torch.equal(ends[0], a) and torch.equal(ends[1], b)


def test_toy_neb_finds_the_saddle(toy_setup):
    obj, a, b, h_saddle = toy_setup
    r = NEBPathFinder(images=20, steps=400, lr=0.01, progress=False).find(obj, a, b)
    assert h_saddle - 1e-6 <= r.height <= h_saddle + 2e-3


def test_toy_bezier_stays_above_the_saddle(toy_setup):
    obj, a, b, h_saddle = toy_setup
    r = CurveFinder(curve="bezier", steps=300, lr=0.01, progress=False).find(obj, a, b)
    assert h_saddle <= r.height < 1.1024  # one bend barely helps here (algorithms.md §3.4.1)


# ---------------------------------------------------------------- double wells
def test_double_well_height_is_one():
    f = _analytic("double-well")
    obj = FunctionObjective(f, 2)
    a, b = torch.tensor([-1.0, 0.0], dtype=D), torch.tensor([1.0, 0.0], dtype=D)
    r = FourierPathFinder(points=51, steps=100, lr=0.01, reg=0.01, progress=False).find(obj, a, b)
    assert r.height == pytest.approx(1.0, abs=0.01)
    curved = FunctionObjective(_analytic("curved-double-well"), 2)
    straight = linear_barrier(curved, a, b, points=1001)
    assert straight.height == pytest.approx(2.28, abs=0.01)
    found = FourierPathFinder(points=51, steps=400, lr=0.02, reg=0.01, temperature=0.03,
                              progress=False).find(curved, a, b)
    assert 1.0 - 1e-9 <= found.height <= 1.01


# ---------------------------------------------------------------- Müller–Brown
def test_muller_brown_neb_oracle_and_fourier_objectives(mb_setup):
    obj, a, b, va, v_saddle = mb_setup
    assert v_saddle == pytest.approx(-40.66, abs=0.01)
    to_v = lambda h: h * 100.0 + va  # noqa: E731
    neb = NEBPathFinder(images=20, steps=400, lr=0.01, progress=False).find(obj, a, b)
    assert abs(to_v(neb.height) - (-40.66)) <= 0.5
    soft = FourierPathFinder(points=100, steps=1000, lr=0.01, reg=0.1, temperature=0.03,
                             progress=False).find(obj, a, b)
    assert v_saddle - 1e-6 <= to_v(soft.height) <= -40.0
    flat = FourierPathFinder(points=100, reduction="sum", steps=1000, lr=0.01, reg=0.1,
                             progress=False).find(obj, a, b)
    assert to_v(flat.height) > -30.0  # documented limitation of the paper's Eq. 4


# ---------------------------------------------------------------- neural networks
def _tiny_data(n=96, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def _mlp(seed, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(6, 8), nn.Tanh()]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def _trained(seed, x, y, steps=150):
    """A solution: the tiny MLP after full-batch Adam (torch's own optimizer)."""
    model = _mlp(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _naive_losses(model, thetas, x, y):
    """Reference: load each point into a deep copy of the model, evaluate in eval mode."""
    out_l, out_a = [], []
    ref = copy.deepcopy(model).eval()
    names = [n for n, _ in ref.named_parameters()]
    for theta in thetas:
        off = 0
        with torch.no_grad():
            for n in names:
                p = dict(ref.named_parameters())[n]
                p.copy_(theta[off:off + p.numel()].view_as(p))
                off += p.numel()
            o = ref(x)
            out_l.append(float(F.cross_entropy(o, y)))
            out_a.append(float((o.argmax(1) == y).float().mean()))
    return np.array(out_l), np.array(out_a)


@pytest.mark.parametrize("engine", ["generic", "first-layer"])
def test_batched_barrier_equals_naive_loop(engine):
    x, y = _tiny_data()
    xt, yt = _tiny_data(seed=1)
    model = _mlp(0)
    obj = Objective(model, F.cross_entropy, {"train": (x, y), "test": (xt, yt)}, chunk_size=40)
    a = obj.flat_params()
    b = Objective(_mlp(1), F.cross_entropy).flat_params()
    assert obj.first_layer()[0] is not None
    r = linear_barrier(obj, a, b, points=21, engine=engine)
    t = torch.linspace(0, 1, 21, dtype=torch.float64).float()
    thetas = (1 - t)[:, None] * a + t[:, None] * b
    for split, (xx, yy) in (("train", (x, y)), ("test", (xt, yt))):
        ref_l, ref_a = _naive_losses(model, thetas, xx, yy)
        np.testing.assert_allclose(r.profiles[split].losses, ref_l, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.profiles[split].accuracies, ref_a, atol=1e-12)
    assert r.settings["engine"] == engine
    i = int(np.argmax(r.profiles["train"].losses))
    assert r.height == r.profiles["train"].losses[i] and r.argmax_t == pytest.approx(i / 20)
    assert r.barrier == pytest.approx(r.height - max(r.profiles["train"].losses[[0, -1]]))


def test_engines_agree_on_gradients_and_chunked_backward():
    x, y = _tiny_data(n=100)
    model = _mlp(0)
    a = Objective(model, F.cross_entropy).flat_params()
    b = Objective(_mlp(2), F.cross_entropy).flat_params()
    grads = []
    # over 4 chunks: within gradient_budget "generic" keeps per-point gradients and "first-layer"
    # one graph; with gradient_budget 0 both use the two-pass scheme
    for engine, chunk, budget in (("generic", 1000, 1 << 30), ("first-layer", 1000, 1 << 30),
                                  ("first-layer", 30, 1 << 30), ("first-layer", 30, 0),
                                  ("generic", 30, 1 << 30), ("generic", 30, 0)):
        obj = Objective(model, F.cross_entropy, (x, y), chunk_size=chunk)
        path = FourierPath(a, b, n_terms=3)
        with torch.no_grad():
            path.control.copy_(torch.randn(path.control.shape, generator=torch.Generator().manual_seed(3)) * 0.1)
        ev = PathEvaluator(obj, engine=engine, graph_budget=0 if chunk == 30 else 1 << 20,
                           gradient_budget=budget)
        t = torch.linspace(0, 1, 9)
        ev.backward(path.basis(t), path.vectors, lambda lo: 0.1 * torch.logsumexp(lo / 0.1, 0), split="train")
        grads.append(path.control.grad.clone())
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0], rtol=1e-4, atol=1e-6)


def test_fourier_on_a_network_keeps_endpoints_and_does_not_touch_the_module():
    x, y = _tiny_data()
    model = _trained(0, x, y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = Objective(model, F.cross_entropy, (x, y))
    a, b = obj.flat_params(), Objective(_trained(1, x, y), F.cross_entropy).flat_params()
    r = FourierPathFinder(n_terms=4, points=11, steps=30, lr=0.05, progress=False).find(obj, a, b)
    assert float(r.coefficients.abs().max()) > 0
    ends = r.path.points([0.0, 1.0])
    assert torch.equal(ends[0], a) and torch.equal(ends[1], b)
    straight = linear_barrier(obj, a, b, points=101)
    assert r.height < straight.height  # the optimised path is lower than the segment
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    # minibatch + random-t variant runs and keeps endpoints
    r2 = FourierPathFinder(n_terms=4, points=11, steps=10, batch_size=32, points_per_step=5,
                           progress=False).find(obj, a, b)
    assert torch.equal(r2.path.points([1.0])[0], b)


def test_batchnorm_recompute_matches_reference_and_leaves_module_alone():
    x, y = _tiny_data(n=80)  # two equal chunks: size-weighted = cumulative average
    model = _mlp(0, bn=True)
    model.train()
    with torch.no_grad():
        model(x * 3 + 1)  # give the running stats non-trivial values
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=40)
    a = obj.flat_params()
    b = Objective(_mlp(1, bn=True), F.cross_entropy).flat_params()
    r = linear_barrier(obj, a, b, points=5, batchnorm="recompute", splits=("train",))
    assert r.batchnorm == "recompute"
    frozen = linear_barrier(obj, a, b, points=5, splits=("train",))
    assert frozen.batchnorm == "eval"
    # reference: for each t, reset BN stats of a copy, one full-batch train-mode pass, evaluate
    t = torch.linspace(0, 1, 5, dtype=torch.float64).float()
    for k, tk in enumerate(t):
        ref = copy.deepcopy(model)
        with torch.no_grad():
            for (n, p), pa, pb in zip(ref.named_parameters(), obj.spec.unflatten(a).values(),
                                      obj.spec.unflatten(b).values()):
                p.copy_((1 - tk) * pa + tk * pb)
        bn = ref[3]
        bn.reset_running_stats()
        bn.momentum = None
        ref.train()
        with torch.no_grad():
            for i in range(0, 80, 40):
                ref(x[i:i + 40])
            ref.eval()
            expected = float(F.cross_entropy(ref(x), y))
        assert r.losses[k] == pytest.approx(expected, rel=1e-5)
    assert not np.allclose(r.losses, frozen.losses)
    for k2, v in model.state_dict().items():
        assert torch.equal(v, before[k2])
    assert model.training  # flags restored


def test_bad_input_is_one_line_usage_error(toy_setup):
    obj, a, b, _ = toy_setup
    with pytest.raises(UsageError, match="reduction"):
        FourierPathFinder(reduction="max").find(obj, a, b)
    with pytest.raises(UsageError, match="start has 3 parameters"):
        linear_barrier(obj, torch.zeros(3), b)
    with pytest.raises(UsageError, match="batchnorm"):
        profile_path(obj, FourierPath(a, b), 5, batchnorm="sometimes")


# ---------------------------------------------------------------- the soft-max objective
def _bump_losses(scale=0.01, shift=0.0, m=50):
    """Losses along a path with one barrier: ≈0.01 at the ends, a bump of 0.004 at t = 0.5."""
    t = torch.linspace(0, 1, m, dtype=D)
    return shift + scale * (1.0 + 0.4 * torch.exp(-((t - 0.5) / 0.1) ** 2))


def _weights_and_value(reduce, losses):
    l = losses.clone().requires_grad_(True)
    value = reduce(l)
    (w,) = torch.autograd.grad(value, l)
    return w, float(value.detach())


def test_softmax_objective_is_a_near_max_at_digits_scale():
    """On a path whose losses are ~0.01 the default soft-max weights the highest point far above
    the mean and its value is within a few percent of the maximum (a fixed τ = 0.1 in loss
    units, the former default, weights every point almost equally: the mean loss)."""
    from topograph.paths import path_reduction

    losses = _bump_losses()
    m, top = losses.numel(), float(losses.max())
    w, value = _weights_and_value(path_reduction("softmax"), losses)
    # the reference: the weights written out, τ = 0.05 × spread, 0.9 soft-max + 0.1 mean
    tau = 0.05 * float(losses.max() - losses.min())
    e = np.exp((losses.numpy() - top) / tau)
    expected = 0.9 * e / e.sum() + 0.1 / m
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-10)
    assert float(w.sum()) == pytest.approx(1.0)
    assert float(w.max()) >= 10 * float(w.mean()) and int(w.argmax()) == int(losses.argmax())
    assert abs(value - top) <= 0.03 * top
    # the former absolute temperature: near-uniform weights, a value far from the maximum
    old = lambda l: 0.1 * torch.logsumexp(l / 0.1, 0) + 0.1 * l.mean()  # noqa: E731
    w_old, v_old = _weights_and_value(old, losses)
    assert float(w_old.max()) < 1.1 * float(w_old.mean()) and v_old > 10 * top


def test_softmax_weights_do_not_depend_on_loss_scale_or_shift():
    from topograph.paths import path_reduction

    soft = path_reduction("softmax", temperature=0.1, mean_weight=0.2)
    w1, v1 = _weights_and_value(soft, _bump_losses(scale=0.01))
    w2, v2 = _weights_and_value(soft, _bump_losses(scale=250.0, shift=-40.0))
    torch.testing.assert_close(w1, w2)
    assert v2 == pytest.approx(250.0 / 0.01 * v1 - 40.0, rel=1e-9)
    flat = torch.full((7,), 0.3, dtype=D)  # no spread: the value is the loss, the weights equal
    w, v = _weights_and_value(soft, flat)
    assert v == pytest.approx(0.3, rel=1e-12) and torch.allclose(w, torch.full_like(w, 1 / 7))
    with pytest.raises(UsageError, match="temperature"):
        path_reduction("softmax", temperature=0.0)
    with pytest.raises(UsageError, match="mean_weight"):
        path_reduction("softmax", mean_weight=1.0)


def test_path_reduction_docstring_example_runs():
    import doctest

    from topograph.paths import fourier

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(fourier.path_reduction, "path_reduction", globs={}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
