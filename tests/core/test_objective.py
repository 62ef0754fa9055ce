"""The functional core against independent references: the module's own forward pass,
dense Hessians from torch.autograd.functional, and untouched modules."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, cross_entropy_of_flat, dense_hessian, flat_params, tiny_mlp
from topograph.core import FunctionObjective, Objective, ParamSpec, normalize_direction, random_direction
from topograph.errors import UsageError
from topograph.models import build_model


def point_and_hessian(model, x, y):
    """The model's flat parameters and the dense Hessian of its cross-entropy there."""
    flat0 = flat_params(model)
    return flat0, dense_hessian(cross_entropy_of_flat(model, x, y), flat0)


def test_flatten_unflatten_exact_round_trip():
    model = tiny_mlp()
    spec = ParamSpec.from_module(model)
    params = {n: p.detach() for n, p in model.named_parameters()}
    flat = spec.flatten(params)
    assert flat.shape == (sum(p.numel() for p in model.parameters()),)
    back = spec.unflatten(flat)
    for n in params:
        assert torch.equal(back[n], params[n])
        assert back[n].data_ptr() >= flat.data_ptr()  # views, no copy
    with pytest.raises(UsageError, match="length"):
        spec.unflatten(flat[:-1])


def test_loss_equals_module_forward_loss_and_chunks_do_not_change_it():
    x, y = classification_data(101)
    model = tiny_mlp()
    expected = F.cross_entropy(model(x), y).item()
    acc = (model(x).argmax(1) == y).float().mean().item()
    for chunk in (7, 50, 1000):
        obj = Objective(model, F.cross_entropy, (x, y), chunk_size=chunk)
        ev = obj.evaluate()
        assert ev.loss == pytest.approx(expected, rel=1e-6)
        assert ev.accuracy == pytest.approx(acc)
        assert ev.n == 101


def test_gradient_equals_autograd_on_module():
    x, y = classification_data(64)
    model = tiny_mlp()
    F.cross_entropy(model(x), y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    obj = Objective(copy.deepcopy(model), F.cross_entropy, (x, y), chunk_size=10)
    loss, g = obj.value_and_grad()
    torch.testing.assert_close(g, expected, rtol=1e-5, atol=1e-6)
    gd = obj.grad(obj.params())
    assert set(gd) == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hvp_equals_dense_hessian_times_v(method):
    x, y = classification_data(40)
    model = tiny_mlp()
    flat0, H = point_and_hessian(model, x, y)
    v = torch.randn(flat0.shape[0], generator=torch.Generator().manual_seed(3))
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=16, hvp_method=method)
    torch.testing.assert_close(obj.hvp(flat0, v), H @ v, rtol=1e-4, atol=1e-6)
    matvec, n = obj.hvp_function(flat0, keep_graph=False)
    assert n == flat0.shape[0]
    torch.testing.assert_close(matvec(v), H @ v, rtol=1e-4, atol=1e-6)


def test_hvp_restricted_to_one_layer_is_the_diagonal_block():
    x, y = classification_data(30)
    model = tiny_mlp()
    flat0, H = point_and_hessian(model, x, y)
    obj = Objective(model, F.cross_entropy, (x, y))
    sl = obj.spec.slice_of("3.weight")
    matvec, n = obj.hvp_function(flat0, params=["3.weight"])
    assert n == sl.stop - sl.start
    v = torch.randn(n)
    torch.testing.assert_close(matvec(v), H[sl, sl] @ v, rtol=1e-4, atol=1e-6)


def test_module_and_buffers_untouched_by_evaluations():
    model = tiny_mlp((5, 6, 3), batchnorm=True, activation=nn.ReLU)
    model.train()
    before = copy.deepcopy(model.state_dict())
    x, y = classification_data(50)
    for policy in ("eval", "batch"):
        obj = Objective(model, F.cross_entropy, (x, y), batchnorm=policy)
        theta = obj.flat_params() + 0.1
        obj.evaluate(theta)
        obj.value_and_grad(theta)
        obj.hvp(theta, torch.ones(obj.size))
        obj.evaluate_many(torch.stack([theta, theta * 0.5]))
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert model.training and all(m.training for m in model.modules())


def test_buffer_policies_match_module_in_eval_and_train_mode():
    model = tiny_mlp((5, 6, 3), batchnorm=True, activation=nn.ReLU)
    x, y = classification_data(50)
    with torch.no_grad():
        model.train()
        model(x * 3 + 1)  # move the running statistics away from their defaults
        model.eval()
        eval_loss = F.cross_entropy(model(x), y).item()
        ref = copy.deepcopy(model).train()
        batch_loss = F.cross_entropy(ref(x), y).item()
    assert Objective(model, F.cross_entropy, (x, y), batchnorm="eval").loss() == pytest.approx(eval_loss, rel=1e-6)
    assert Objective(model, F.cross_entropy, (x, y), batchnorm="batch", chunk_size=50).loss() == pytest.approx(
        batch_loss, rel=1e-6
    )
    assert eval_loss != pytest.approx(batch_loss, rel=1e-3)


def test_evaluate_many_matches_single_evaluations_and_splits():
    x, y = classification_data(60)
    xt, yt = classification_data(20, seed=1)
    obj = Objective(tiny_mlp(), F.cross_entropy, {"train": (x, y), "test": (xt, yt)}, chunk_size=25)
    thetas = obj.flat_params() + 0.3 * torch.randn(4, obj.size)
    losses, accs = obj.evaluate_many(thetas, split="test")
    for i in range(4):
        ev = obj.evaluate(thetas[i], split="test")
        assert losses[i].item() == pytest.approx(ev.loss, rel=1e-6)
        assert accs[i].item() == pytest.approx(ev.accuracy)
    batch = (x[:8], y[:8])
    assert obj.loss(thetas[0], batch=batch) == pytest.approx(
        F.cross_entropy(torch.func.functional_call(obj.module, obj.spec.unflatten(thetas[0]), (x[:8],)), y[:8]).item(),
        rel=1e-6,
    )
    with pytest.raises(UsageError, match="split 'val'"):
        obj.loss(split="val")


def test_regression_loss_has_nan_accuracy():
    x = torch.randn(20, 3)
    y = torch.randn(20, 1)
    obj = Objective(nn.Linear(3, 1), F.mse_loss, (x, y))
    assert math.isnan(obj.evaluate().accuracy)


def test_filter_normalised_direction_has_filter_norms_of_weights():
    model = build_model("cnn-small", seed=0)
    spec = ParamSpec.from_module(model)
    w = spec.flatten(dict(model.named_parameters())).detach()
    d = random_direction(spec, w, seed=5)
    for name, shape, sl in spec.items():
        if len(shape) <= 1:
            assert torch.count_nonzero(d[sl]) == 0
            continue
        dw = d[sl].view(shape[0], -1).norm(dim=1)
        ww = w[sl].view(shape[0], -1).norm(dim=1)
        torch.testing.assert_close(dw, ww, rtol=1e-5, atol=1e-6)
    d2 = random_direction(spec, w, seed=5)
    assert torch.equal(d, d2)
    keep = normalize_direction(spec, torch.randn(spec.size), w, ignore_1d=False)
    b = spec.slice_of("features.0.bias")
    assert torch.equal(keep[b], w[b])


def test_function_objective_matches_analytic_derivatives():
    def f(p):
        x, y = p[..., 0], p[..., 1]
        return x**2 - y**2 + y**4 / 2

    obj = FunctionObjective(f, 2)
    pt = torch.tensor([0.3, -0.7], dtype=torch.float64)
    val, g = obj.value_and_grad(pt)
    assert val == pytest.approx(0.09 - 0.49 + 0.7**4 / 2)
    torch.testing.assert_close(g, torch.tensor([0.6, 1.4 - 2 * 0.343], dtype=torch.float64))
    H = torch.tensor([[2.0, 0.0], [0.0, -2 + 6 * 0.49]], dtype=torch.float64)
    torch.testing.assert_close(obj.hvp(pt, torch.tensor([1.0, 2.0])), H @ torch.tensor([1.0, 2.0], dtype=torch.float64))
    vals, _ = obj.evaluate_many(torch.stack([pt, -pt]))
    torch.testing.assert_close(vals, torch.stack([f(pt), f(-pt)]))


def test_differentiable_losses_of_many_points():
    x, y = classification_data(30)
    obj = Objective(tiny_mlp(), F.cross_entropy, (x, y), chunk_size=11)
    thetas = (obj.flat_params() + 0.2 * torch.randn(3, obj.size)).requires_grad_(True)
    ls = obj.losses(thetas)
    ls.sum().backward()
    for i in range(3):
        val, g = obj.value_and_grad(thetas[i].detach())
        assert ls[i].item() == pytest.approx(val, rel=1e-6)
        torch.testing.assert_close(thetas.grad[i], g, rtol=1e-5, atol=1e-6)


def test_hvp_object_gives_batched_products_and_the_gradient():
    x, y = classification_data(40)
    model = tiny_mlp()
    flat0, H = point_and_hessian(model, x, y)
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=16)
    hvp, n = obj.hvp_function(flat0)
    V = torch.randn(5, n, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hvp.matmat(V), V @ H.T, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(hvp.gradient, obj.grad(flat0), rtol=1e-5, atol=1e-7)
    sub, m = obj.hvp_function(flat0, params=["1.bias"])
    assert sub.gradient.shape == (m,)
    sl = obj.spec.slice_of("1.bias")
    torch.testing.assert_close(sub.gradient, obj.grad(flat0)[sl], rtol=1e-5, atol=1e-7)


def test_accuracy_fn_none_means_no_accuracy():
    x, y = classification_data(20)
    obj = Objective(tiny_mlp(), F.cross_entropy, (x, y), accuracy_fn=None)
    ev = obj.evaluate()
    assert math.isnan(ev.accuracy) and ev.loss == pytest.approx(F.cross_entropy(obj.module(x), y).item(), rel=1e-6)
