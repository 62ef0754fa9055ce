"""SAM / ASAM against hand computations on a quadratic and against torch's own optimizers."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from tests.helpers import classification_data, cross_entropy_closure, tiny_mlp
from topograph.errors import UsageError
from topograph.optim.registry import build_optimizer
from topograph.optim.sam import SAM

DT = torch.float64


def quadratic(seed=0, d=6):
    """f(x) = ½ xᵀAx + bᵀx with x split over two parameter tensors (the norm of ε is global)."""
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(d, d, generator=gen, dtype=DT)
    a = m @ m.T / d + torch.eye(d, dtype=DT)
    b = torch.randn(d, generator=gen, dtype=DT)
    x0 = torch.randn(d, generator=gen, dtype=DT)
    params = [nn.Parameter(x0[:2].clone()), nn.Parameter(x0[2:].clone())]
    return a, b, x0, params


def closure_for(opt, params, a, b, calls=None):
    def closure(backward: bool = True):
        opt.zero_grad()
        x = torch.cat(params)
        loss = 0.5 * x @ a @ x + b @ x
        if calls is not None:
            calls.append(backward)
        if backward:
            loss.backward()
        return loss

    return closure


def flat(params):
    return torch.cat([p.detach() for p in params])


@pytest.mark.parametrize("adaptive, eta", [(False, 0.0), (True, 0.0), (True, 0.01)])
def test_one_step_equals_hand_computation(adaptive, eta):
    a, b, x0, params = quadratic()
    rho, lr = 0.3, 0.1
    opt = SAM(torch.optim.SGD(params, lr=lr), rho=rho, adaptive=adaptive, eta=eta)
    loss = opt.step(closure_for(opt, params, a, b))
    # by hand: g = Ax + b; SAM ε = ρg/‖g‖; ASAM ε = ρT²g/‖Tg‖ with T = |x| + η
    g = a @ x0 + b
    t = x0.abs() + eta if adaptive else torch.ones_like(x0)
    eps = rho * t * t * g / torch.linalg.norm(t * g)
    g_sam = a @ (x0 + eps) + b
    torch.testing.assert_close(flat(params), x0 - lr * g_sam, rtol=0, atol=1e-13)
    torch.testing.assert_close(loss, 0.5 * x0 @ a @ x0 + b @ x0, rtol=0, atol=1e-13)
    assert opt.counts.last_eps_norm == pytest.approx(float(torch.linalg.norm(eps)), rel=1e-12)


@pytest.mark.parametrize("make_base", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.01),
])
def test_rho_zero_is_the_base_optimizer_bit_for_bit(make_base):
    x, y = classification_data(32, seed=1)
    ref = tiny_mlp((5, 8, 3), dropout=0.2)
    ref_opt = make_base(ref.parameters())
    torch.manual_seed(5)  # dropout masks
    for _ in range(5):
        ref_opt.step(cross_entropy_closure(ref_opt, ref, x, y))
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    opt = SAM(make_base(model.parameters()), rho=0.0)
    torch.manual_seed(5)
    for _ in range(5):
        opt.step(cross_entropy_closure(opt, model, x, y))
    for p, q in zip(ref.parameters(), model.parameters()):
        assert torch.equal(p, q)
    assert opt.work.backward_passes == 5 and opt.counts.perturbed_steps == 0


def test_two_forward_backward_per_step_and_exact_restore():
    a, b, x0, params = quadratic(seed=2)
    calls: list[bool] = []
    opt = SAM(torch.optim.SGD(params, lr=0.0), rho=0.5)  # lr 0: θ must come back exactly
    for _ in range(4):
        opt.step(closure_for(opt, params, a, b, calls))
    assert calls == [True] * 8
    assert opt.work.backward_passes == 8 and opt.work.forward_passes == 8 and opt.counts.steps == 4
    assert torch.equal(flat(params), x0)


@pytest.mark.slow
def test_state_dict_round_trip_resumes_identically():
    x, y = classification_data(32, seed=1)
    model = tiny_mlp((5, 8, 3), dropout=0.2)
    model.eval()  # no dropout: the continuation is deterministic
    opt = SAM(torch.optim.Adam(model.parameters(), lr=0.01), rho=0.1)
    for _ in range(3):
        opt.step(cross_entropy_closure(opt, model, x, y))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    for _ in range(3):
        opt.step(cross_entropy_closure(opt, model, x, y))
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    twin = tiny_mlp((5, 8, 3), seed=9, dropout=0.2)
    twin.load_state_dict(ck["model"])
    twin.eval()
    twin_opt = SAM(torch.optim.Adam(twin.parameters(), lr=0.01), rho=0.1)
    twin_opt.load_state_dict(ck["opt"])
    assert twin_opt.counts.steps == 3 and twin_opt.work.backward_passes == 6
    for _ in range(3):
        twin_opt.step(cross_entropy_closure(twin_opt, twin, x, y))
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
    assert twin_opt.counts == opt.counts
    with pytest.raises(UsageError, match="'base' and 'sam'"):
        twin_opt.load_state_dict(ck["opt"]["base"])


def test_lr_scheduler_sets_the_base_learning_rate():
    a, b, x0, params = quadratic(seed=3)
    rho = 0.2
    opt = SAM(torch.optim.SGD(params, lr=0.2), rho=rho)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x = x0.clone()
    for lr in (0.2, 0.1, 0.05):
        assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(lr)
        opt.step(closure_for(opt, params, a, b))
        sched.step()
        g = a @ x + b
        x = x - lr * (a @ (x + rho * g / torch.linalg.norm(g)) + b)
    torch.testing.assert_close(flat(params), x, rtol=0, atol=1e-13)


def test_batchnorm_statistics_updated_once_per_step():
    x, y = classification_data(32, seed=1)
    model = tiny_mlp((5, 8, 3), batchnorm=True, dropout=0.2)
    ref = copy.deepcopy(model)
    ref.train()
    with torch.no_grad():
        ref(x)  # one forward at θ: what the running statistics should see
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5, modules=model)
    opt.step(cross_entropy_closure(opt, model, x, y))
    torch.testing.assert_close(model[2].running_mean, ref[2].running_mean, rtol=0, atol=1e-7)
    assert int(model[2].num_batches_tracked) == 1
    plain_model = tiny_mlp((5, 8, 3), batchnorm=True, dropout=0.2)  # without modules= the second pass updates them again
    plain_opt = SAM(torch.optim.SGD(plain_model.parameters(), lr=0.1), rho=0.5)
    plain_opt.step(cross_entropy_closure(plain_opt, plain_model, x, y))
    assert int(plain_model[2].num_batches_tracked) == 2


def test_registry_builds_sam_and_usage_errors():
    model = tiny_mlp((5, 8, 3), batchnorm=True, dropout=0.2)
    opt = build_optimizer("sam", model.parameters(), model=model, rho=0.1,
                          base={"name": "momentum", "lr": 0.05})
    assert isinstance(opt, SAM) and isinstance(opt.base_optimizer, torch.optim.SGD)
    assert opt.rho == 0.1 and opt.param_groups[0]["momentum"] == 0.9
    opt.step(cross_entropy_closure(opt, model, *classification_data(32, seed=1)))
    assert int(model[2].num_batches_tracked) == 1  # the model reached SAM: its second pass froze BatchNorm
    with pytest.raises(UsageError, match="rho must be a finite number >= 0"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=-1.0)
    with pytest.raises(UsageError, match="base_optimizer must be a torch.optim.Optimizer"):
        SAM(model.parameters())
    with pytest.raises(UsageError, match="needs a closure"):
        opt.step()
    with pytest.raises(UsageError, match="has no hyperparameter 'radius'"):
        build_optimizer("sam", model.parameters(), radius=1.0)
