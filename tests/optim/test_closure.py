"""MinibatchClosure and its span fast path (probes and line searches on one minibatch) against plain closures."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, tiny_mlp
from topograph.core.shortcut import combine
from topograph.optim import quasi_newton
from topograph.optim.closure import MinibatchClosure, Span, mode_free
from topograph.optim.guided import GuidedExploration
from topograph.optim.quasi_newton import QuasiNewton
from topograph.runs import RunConfig, train

SIZES, SHAPE, CLASSES = (36, 16, 12, 4), (1, 6, 6), 4  # the shared tiny MLP on 1×6×6 inputs


def test_span_losses_equal_forward_passes_at_the_points():
    model = tiny_mlp(SIZES)
    x, y = classification_data(96, SHAPE, CLASSES)
    closure = MinibatchClosure(model, F.cross_entropy)
    closure.batch = (x, y)
    params = list(model.parameters())
    center = torch.cat([p.detach().reshape(-1) for p in params])
    vectors = torch.randn(3, center.numel())
    span = closure.span(center, vectors, params=params)
    assert span is not None
    coef = torch.randn(7, 3, dtype=torch.float64)
    got = span.losses(coef)
    for k in range(7):  # independent reference: load the point into a copy of the model
        ref = tiny_mlp(SIZES)
        torch.nn.utils.vector_to_parameters((center + coef[k].float() @ vectors), ref.parameters())
        with torch.no_grad():
            assert got[k].item() == pytest.approx(F.cross_entropy(ref(x), y).item(), rel=1e-5)
    assert closure.work.forward_passes == 7


def test_span_refused_where_the_mode_matters_or_the_layout_differs():
    x, y = classification_data(96, SHAPE, CLASSES)
    with_dropout = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Dropout(0.2), nn.Linear(8, 4))
    assert not mode_free(with_dropout)
    closure = MinibatchClosure(with_dropout, F.cross_entropy)
    closure.batch = (x, y)
    params = list(with_dropout.parameters())
    center = torch.cat([p.detach().reshape(-1) for p in params])
    assert closure.span(center, center[None], params=params) is None
    conv_first = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 4))
    assert mode_free(conv_first)  # but a 3×3 kernel on one channel: combining products would not pay
    c2 = MinibatchClosure(conv_first, F.cross_entropy)
    c2.batch = (x, y)
    p2 = list(conv_first.parameters())
    c2_centre = torch.cat([p.detach().reshape(-1) for p in p2])
    assert c2.span(c2_centre, torch.zeros(1, c2_centre.numel()), params=p2) is None
    model = tiny_mlp(SIZES)
    c3 = MinibatchClosure(model, F.cross_entropy)
    c3.batch = (x, y)
    reordered = list(model.parameters())[::-1]
    center = torch.cat([p.detach().reshape(-1) for p in reordered])
    assert c3.span(center, center[None], params=reordered) is None


def _train_ge(fast: bool, steps: int = 40):
    model = tiny_mlp(SIZES)
    x, y = classification_data(256, SHAPE, CLASSES)
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1), explore_every=2, beta=0.5)
    mc = MinibatchClosure(model, F.cross_entropy)

    def plain(backward=True):
        opt.zero_grad()
        with torch.set_grad_enabled(backward):
            loss = F.cross_entropy(model(mc.batch[0]), mc.batch[1])
        if backward:
            loss.backward()
        return loss.detach()

    probes = []
    for t in range(steps):
        i = (t * 32) % 256
        mc.batch = (x[i:i + 32], y[i:i + 32])
        opt.step(mc if fast else plain)
        if t % 2 == 0:
            probes.append(opt.last_probe)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), probes, opt.counts


@pytest.mark.slow
def test_guided_exploration_probes_through_the_span_match_the_closure():
    slow, probes_slow, counts_slow = _train_ge(False)
    fast, probes_fast, counts_fast = _train_ge(True)
    for a, b in zip(probes_slow, probes_fast):
        assert a.loss_plus == pytest.approx(b.loss_plus, rel=1e-5)
        assert a.loss_minus == pytest.approx(b.loss_minus, rel=1e-5)
        assert a.loss0 == pytest.approx(b.loss0, rel=1e-5)
    assert torch.allclose(slow, fast, atol=1e-5)
    assert counts_slow.work == counts_fast.work
    assert counts_slow.probe_forwards == counts_fast.probe_forwards == 20 * 9


def test_step_hooks_still_fire():
    model = tiny_mlp(SIZES)
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1), explore_every=1)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    mc = MinibatchClosure(model, F.cross_entropy)
    mc.batch = classification_data(32, SHAPE, CLASSES)
    opt.step(mc)
    assert seen == ["pre", "post"]


@pytest.mark.slow
def test_quasi_newton_line_search_through_the_span_matches_the_closure():
    x, y = classification_data(200, SHAPE, CLASSES)
    finals = []
    for fast in (False, True):
        model = tiny_mlp(SIZES)
        opt = QuasiNewton(model.parameters(), history_size=5, max_iter=8, tolerance_grad=0, tolerance_change=0)
        mc = MinibatchClosure(model, F.cross_entropy)
        mc.batch = (x, y)

        def plain(backward=True):
            opt.zero_grad()
            with torch.set_grad_enabled(backward):
                loss = F.cross_entropy(model(x), y)
            if backward:
                loss.backward()
            return loss.detach()

        opt.step(mc if fast else plain)
        finals.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), opt.counts))
    (a, ca), (b, cb) = finals
    assert ca.work == cb.work and ca.work.backward_passes == 8
    assert torch.allclose(a, b, atol=1e-4)


def test_trainer_closure_offers_the_span_and_counts_its_forwards(tmp_path, monkeypatch):
    calls = []
    original = Span.losses

    def spy(self, coefficients):
        calls.append(len(coefficients))
        return original(self, coefficients)

    monkeypatch.setattr(Span, "losses", spy)
    doc = {"run": {"name": "ge", "epochs": 2, "threads": 1},
           "data": {"name": "digits", "batch_size": 32, "limit_train": 256},
           "model": {"name": "mlp-digits"},
           "optimizer": {"name": "guided-exploration", "explore_every": 4, "base": {"name": "sgd", "lr": 0.1}}}
    run = train(RunConfig.from_dict(doc), tmp_path, seed=0, progress=False)
    steps = 2 * 256 // 32
    events = steps // 4
    assert calls == [9] * events  # every event's 9 probe points in one span call
    assert run.summary["backward_passes"] == steps
    assert run.summary["forward_passes"] == steps + 9 * events


def test_carried_centre_products_equal_a_fresh_span():
    model = tiny_mlp(SIZES)
    x, y = classification_data(64, SHAPE, CLASSES)
    closure = MinibatchClosure(model, F.cross_entropy)
    closure.batch = (x, y)
    params = list(model.parameters())
    c0 = torch.cat([p.detach().reshape(-1) for p in params]).double()
    v0 = torch.randn(1, c0.numel(), dtype=torch.float64)
    model.double()
    params = list(model.parameters())
    closure.batch = (x.double(), y)
    first = closure.span(c0, v0, params=params)
    first.losses(torch.tensor([[0.3]]))  # computes (and keeps) the first-layer products
    c1 = c0 + 0.7 * v0[0]
    v1 = torch.randn(1, c0.numel(), dtype=torch.float64)
    carried = closure.span(c1, v1, params=params)
    first.carry_to(carried, [0.7])
    fresh = closure.span(c1, v1, params=params)
    t = torch.tensor([[-0.2], [0.0], [0.5]], dtype=torch.float64)
    assert torch.allclose(carried.losses(t), fresh.losses(t), rtol=1e-12, atol=1e-12)
    other_batch = MinibatchClosure(model, F.cross_entropy)
    other_batch.batch = (x.double().clone(), y)
    elsewhere = other_batch.span(c1, v1, params=params)
    first.carry_to(elsewhere, [0.7])  # another batch: nothing is carried
    assert elsewhere.evaluator.centre_products([0.0]) is None


def test_a_trial_step_forms_the_pre_activations_as_the_carried_centre():
    model = tiny_mlp(SIZES)  # float32, as trained
    x, y = classification_data(64, SHAPE, CLASSES)
    closure = MinibatchClosure(model, F.cross_entropy)
    closure.batch = (x, y)
    params = list(model.parameters())
    c0 = torch.cat([p.detach().reshape(-1) for p in params])
    v = torch.randn(1, c0.numel())
    span = closure.span(c0, v, params=params)
    span.losses(torch.tensor([[0.37]]))  # a trial step: keeps the products G (2, n, H)
    first, _ = closure.objective.first_layer(batch=(x, y))
    g = first.products(first.inputs(model, x), c0, v)  # the same products, formed afresh
    a = torch.tensor([[1.0, 0.37]], dtype=torch.float64).to(g)
    combined = combine(a, g.reshape(2, -1)).view_as(g[0])
    assert torch.allclose(combined, torch.mm(a, g.reshape(2, -1)).view_as(g[0]), rtol=1e-5, atol=1e-6)
    carried = span.evaluator.centre_products(torch.tensor([0.37], dtype=torch.float64))[0]
    assert torch.equal(combined, carried)  # the next line starts from exactly these


def _module_loss_and_grad(model, params, point, x, y):
    """Reference: write ``point`` into a copy of the model, one forward and backward pass."""
    ref = copy.deepcopy(model)
    ref_params = [p for p in ref.parameters() if p.requires_grad]
    offset = 0
    with torch.no_grad():
        for p in ref_params:
            p.copy_(point[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
    loss = F.cross_entropy(ref(x), y)
    grads = torch.autograd.grad(loss, ref_params)
    return loss.detach(), torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("frozen_bias", [False, True])
def test_span_value_and_grad_equals_a_forward_backward_pass_at_the_point(frozen_bias):
    torch.manual_seed(3)  # a LayerNorm among the later layers: the span's runner must carry it
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.Tanh(), nn.Linear(16, 12), nn.LayerNorm(12),
                          nn.ReLU(), nn.Linear(12, 4)).double()
    if frozen_bias:
        model[1].bias.requires_grad_(False)
    x, y = classification_data(80, SHAPE, CLASSES)
    x = x.double()
    closure = MinibatchClosure(model, F.cross_entropy)
    closure.batch = (x, y)
    params = [p for p in model.parameters() if p.requires_grad]
    center = torch.cat([p.detach().reshape(-1) for p in params])
    vectors = torch.randn(2, center.numel(), dtype=torch.float64) * 0.1
    span = closure.span(center, vectors, params=params)
    assert span is not None
    a = [0.4, -1.3]
    loss, grad = span.value_and_grad(a)
    ref_loss, ref_grad = _module_loss_and_grad(model, params, center + 0.4 * vectors[0] - 1.3 * vectors[1], x, y)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    assert (closure.work.forward_passes, closure.work.backward_passes) == (1, 1)
    # after a line search's trial steps, from the kept products: the same numbers
    span.losses(torch.tensor([[0.1, 0.2], [-0.5, 0.0]], dtype=torch.float64))
    again_loss, again = span.value_and_grad(a)
    assert torch.equal(again, grad) and float(again_loss) == float(loss)


@pytest.mark.slow
def test_quasi_newton_takes_its_gradients_from_the_carried_line():
    """Within one step, iterations after the first get f and ∇f from the last line's products
    (one closure call per CARRY_MAX + 1 iterations) and land where closure gradients lead."""
    x, y = classification_data(200, SHAPE, CLASSES)
    x = x.double()
    runs = []
    for fast in (False, True):
        model = tiny_mlp(SIZES).double()
        opt = QuasiNewton(model.parameters(), history_size=5, max_iter=12, tolerance_grad=0, tolerance_change=0)
        mc = MinibatchClosure(model, F.cross_entropy)
        if not fast:
            mc.span = None
        calls = []
        original = mc.__call__
        mc.batch = (x, y)
        counted = lambda backward=True: (calls.append(backward), original(backward))[1]  # noqa: E731
        counted.span = mc.span
        opt.step(counted)
        runs.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), opt.counts, calls,
                     mc.work.backward_passes))
    (slow, c_slow, calls_slow, _), (fast, c_fast, calls_fast, bw_fast) = runs
    assert c_slow.work.backward_passes == c_fast.work.backward_passes == 12 == bw_fast
    assert calls_slow.count(True) == 12
    assert calls_fast == [True] * (1 + 11 // (quasi_newton.CARRY_MAX + 1))  # the rest came from the span
    assert torch.allclose(slow, fast, rtol=1e-8, atol=1e-9)
