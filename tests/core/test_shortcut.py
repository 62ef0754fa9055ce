"""The first-layer shortcut and the subspace evaluator against the plain forward pass of the model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, losses_at_points, tiny_conv_bn, tiny_mlp
from topograph.core import Objective, ParamSpec, SubspaceEvaluator
from topograph.core.shortcut import find_first_layer

DT = torch.float64


@pytest.mark.parametrize("layer", [nn.Linear(12, 5), nn.Conv2d(3, 4, 3, padding=1, stride=2),
                                   nn.Conv2d(2, 6, 3, groups=2, dilation=2, padding=2)])
def test_products_are_the_layer_at_the_directions(layer):
    """G_j = layer(X; V_j): each product equals the layer's own forward pass with that weight."""
    layer = layer.to(DT)
    model = nn.Sequential(layer)
    spec = ParamSpec.from_module(model)
    x = torch.randn(5, 12, dtype=DT) if isinstance(layer, nn.Linear) else torch.randn(
        5, layer.in_channels, 7, 7, dtype=DT)
    first, why = find_first_layer(model, spec, x[:2])
    assert first is not None, why
    centre = spec.flatten(dict(model.named_parameters())).detach()
    vectors = torch.randn(3, spec.size, dtype=DT)
    g = first.products(first.inputs(model, x), centre, vectors)
    for j, point in enumerate([centre, *vectors]):
        params = spec.unflatten(point)
        want = torch.func.functional_call(model, params, (x,))
        torch.testing.assert_close(g[j], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: tiny_conv_bn(channels=3), lambda: tiny_mlp((108, 7, 3)),
                                  lambda: tiny_conv_bn(channels=3, batchnorm=False)])
@pytest.mark.parametrize("with_centre", [True, False])
def test_subspace_evaluator_equals_the_plain_forward(make, with_centre):
    """Both engines equal a forward pass per point, on a conv net with BatchNorm and a skip
    connection (found by the probe, not a Sequential) and on an MLP; with and without a centre."""
    torch.manual_seed(0)
    model = make().to(DT)
    x, y = classification_data(40, (3, 6, 6), 3)
    x = x.to(DT)
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=16)
    spec = obj.spec
    centre = obj.flat_params() if with_centre else None
    vectors = torch.randn(2 if with_centre else 3, spec.size, dtype=DT) * 0.05
    if not with_centre:  # path-like points: two of the vectors near the solution
        vectors[0] += obj.flat_params()
    coef = torch.rand(6, vectors.shape[0], dtype=DT)
    points = (coef @ vectors) if centre is None else centre + coef @ vectors
    want, _ = losses_at_points(model, points, x, y)
    for engine in ("generic", "first-layer"):
        ev = SubspaceEvaluator(obj, centre, vectors, engine=engine)
        assert ev.resolved_engine() == engine
        losses, _ = ev.evaluate(coef)
        torch.testing.assert_close(losses, want, rtol=1e-10, atol=1e-12)
        diff = ev.losses(coef.requires_grad_(False))
        torch.testing.assert_close(diff.detach(), want, rtol=1e-10, atol=1e-12)


def test_differentiable_losses_give_the_gradient_of_the_vectors():
    torch.manual_seed(1)
    model = tiny_conv_bn(channels=3, batchnorm=False).to(DT)
    x, y = classification_data(24, (3, 6, 6), 3)
    obj = Objective(model, F.cross_entropy, (x.to(DT), y))
    vectors = (torch.randn(2, obj.size, dtype=DT) * 0.1 + obj.flat_params()).requires_grad_(True)
    coef = torch.tensor([[0.3, 0.7], [0.6, 0.4]], dtype=DT)
    grads = []
    for engine in ("generic", "first-layer"):
        vectors.grad = None
        SubspaceEvaluator(obj, None, vectors, engine=engine).losses(coef).sum().backward()
        grads.append(vectors.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_the_probe_finds_the_first_layer_of_any_module_and_refuses_what_it_cannot_use():
    model = tiny_conv_bn(channels=3)
    spec = ParamSpec.from_module(model)
    x = torch.randn(2, 3, 6, 6)
    first, _ = find_first_layer(model, spec, x)
    assert first.name == "conv" and first.chain is None and not first.stacked

    class Tied(nn.Module):  # the first layer's weight used again later
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return F.linear(self.a(x), self.a.weight)

    tied = Tied()
    found, why = find_first_layer(tied, ParamSpec.from_module(tied), torch.randn(2, 4))
    assert found is None and "other than" in why
    lstm = nn.LSTM(4, 3, batch_first=True)
    found, why = find_first_layer(lstm, ParamSpec.from_module(lstm), torch.randn(2, 5, 4))
    assert found is None and "LSTM" in why

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(torch.tanh(self.a(x)))

    twice = Twice()
    found, why = find_first_layer(twice, ParamSpec.from_module(twice), torch.randn(2, 4))
    assert found is None and "more than once" in why


@pytest.mark.parametrize("engine", ["generic", "first-layer"])
def test_points_vmapped_in_groups_equal_points_one_by_one(engine):
    """The grouped evaluation a GPU uses (``vectorize``: grouped convolutions over the points)
    gives the per-point values, on a conv net with eval-mode BatchNorm."""
    torch.manual_seed(2)
    model = tiny_conv_bn(channels=3).to(DT)
    x, y = classification_data(20, (3, 6, 6), 3)
    obj = Objective(model, F.cross_entropy, (x.to(DT), y), chunk_size=8)
    vectors = torch.randn(2, obj.size, dtype=DT) * 0.05
    coef = torch.rand(7, 2, dtype=DT)
    one = SubspaceEvaluator(obj, obj.flat_params(), vectors, engine=engine, vectorize=False).evaluate(coef)
    many = SubspaceEvaluator(obj, obj.flat_params(), vectors, engine=engine, vectorize=True,
                             points_per_pass=3).evaluate(coef)
    torch.testing.assert_close(many[0], one[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(many[1], one[1])
