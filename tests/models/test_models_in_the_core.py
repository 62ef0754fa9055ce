"""The papers' models through the public API: Objective (evaluate, value_and_grad, hvp) and
compute_surface, against naive references — the module's own forward and autograd, central
finite differences of the gradient (float64) and a functional_call loop over the grid."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from topograph.core import Objective
from topograph.landscape import compute_surface, random_directions
from topograph.models import build_model

#: name -> (keywords, input shape of one sample, loss)
CASES = {
    "resnet6": ({"in_channels": 1, "image_size": 8}, (1, 8, 8), "ce"),
    "resnet8": ({"in_channels": 3, "image_size": 8}, (3, 8, 8), "ce"),
    "resnet8-B": ({"in_channels": 3, "image_size": 8, "shortcut": "B"}, (3, 8, 8), "ce"),
    "vgg9": ({"in_channels": 1, "image_size": 12}, (1, 12, 12), "ce"),
    "lenet5": ({}, (1, 28, 28), "ce"),
    "fcp": ({}, (784,), "ce"),
    "lstm": ({}, (28, 28), "ce"),
    "autoencoder": ({}, (1, 28, 28), "mse"),
}


def keys(*names: str, slow: tuple[str, ...] = ("vgg9", "resnet6")) -> list:
    """``names`` as parameters; the bigger models' cases marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


def _case(key: str, *, dtype=torch.float32, n: int = 6):
    kwargs, shape, loss = CASES[key]
    model = build_model(key.split("-")[0], seed=0, **kwargs).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, *shape, generator=g, dtype=dtype)
    # BatchNorm running statistics away from the defaults, so eval mode is not an identity
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.uniform_(-0.2, 0.2, generator=g)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5, generator=g)
    if loss == "mse":
        return model, F.mse_loss, x, x.reshape(n, -1)
    return model, F.cross_entropy, x, torch.randint(0, 10, (n,), generator=g)


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("key", keys(*CASES))
def test_objective_matches_the_module(key):
    model, loss_fn, x, y = _case(key)
    objective = Objective(model, loss_fn, {"train": (x, y)}, chunk_size=4)   # two chunks
    ev = objective.evaluate()
    model.eval()
    out = model(x)
    expected = loss_fn(out, y)
    assert ev.loss == pytest.approx(expected.item(), rel=1e-5)
    if loss_fn is F.mse_loss:
        assert math.isnan(ev.accuracy)                     # no accuracy for float targets
    else:
        assert ev.accuracy == pytest.approx(float((out.argmax(1) == y).float().mean()))
    value, grad = objective.value_and_grad()
    model.zero_grad()
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(grad, _flat_grad(model), rtol=1e-4, atol=1e-6)
    assert model.training is False and all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("key", keys("resnet6", "resnet8-B", "lstm", "lenet5", "fcp", "autoencoder", "vgg9",
                                      slow=("vgg9", "resnet6", "lenet5")))
def test_hvp_matches_finite_differences_of_the_gradient(key):
    model, loss_fn, x, y = _case(key, dtype=torch.float64, n=4)
    objective = Objective(model, loss_fn, {"train": (x, y)})
    theta = objective.flat_params()
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    v /= v.norm()
    hv = objective.hvp(theta, v)
    eps = 1e-5
    reference = (objective.grad(theta + eps * v) - objective.grad(theta - eps * v)) / (2 * eps)
    assert hv.dtype == torch.float64 and hv.norm() > 0
    torch.testing.assert_close(hv, reference, rtol=1e-4, atol=1e-6 * float(reference.norm()))


@pytest.mark.parametrize("key", keys("resnet8", "lstm", "autoencoder", slow=("resnet8",)))
def test_surface_matches_a_functional_call_loop(key):
    model, loss_fn, x, y = _case(key)
    objective = Objective(model, loss_fn, {"train": (x, y)})
    directions = random_directions(objective, dim=2, norm="filter", seed=0)
    surface = compute_surface(objective, directions, range=(-0.5, 0.5), resolution=3, progress=False)
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    buffers = dict(model.named_buffers())
    center, (d1, d2) = directions.center, directions.vectors
    model.eval()
    with torch.no_grad():
        for i, a in enumerate(surface.axes[0]):
            for j, b in enumerate(surface.axes[1]):
                flat = center + float(a) * d1 + float(b) * d2
                params = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
                expected = loss_fn(functional_call(model, (params, buffers), (x,)), y)
                assert surface.loss[i, j] == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert bool(surface.done.all())
