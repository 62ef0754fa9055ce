"""Barriers and path searches between networks against naive per-point loops over copies of the
model: both engines, their gradients, the module left untouched, BatchNorm statistics recomputed
along the path (an MLP, and ResNets with BatchNorm)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, losses_at_points, tiny_mlp
from topograph.core import Objective
from topograph.models import build_model
from topograph.paths import FourierPath, FourierPathFinder, PathEvaluator, linear_barrier

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny problems


def trained(seed, x, y, steps=150):
    """A solution: the tiny MLP after full-batch Adam (torch's own optimizer)."""
    model = tiny_mlp((6, 8, 3), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("engine", ["generic", "first-layer"])
def test_batched_barrier_equals_naive_loop(engine):
    x, y = classification_data(96, (6,))
    xt, yt = classification_data(96, (6,), seed=1)
    model = tiny_mlp((6, 8, 3), seed=0)
    obj = Objective(model, F.cross_entropy, {"train": (x, y), "test": (xt, yt)}, chunk_size=40)
    a = obj.flat_params()
    b = Objective(tiny_mlp((6, 8, 3), seed=1), F.cross_entropy).flat_params()
    assert obj.first_layer()[0] is not None
    r = linear_barrier(obj, a, b, points=21, engine=engine)
    t = torch.linspace(0, 1, 21, dtype=torch.float64).float()
    thetas = (1 - t)[:, None] * a + t[:, None] * b
    for split, (xx, yy) in (("train", (x, y)), ("test", (xt, yt))):
        ref_l, ref_a = losses_at_points(model, thetas, xx, yy)
        np.testing.assert_allclose(r.profiles[split].losses, ref_l.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.profiles[split].accuracies, ref_a.numpy(), atol=1e-12)
    assert r.settings["engine"] == engine
    i = int(np.argmax(r.profiles["train"].losses))
    assert r.height == r.profiles["train"].losses[i] and r.argmax_t == pytest.approx(i / 20)
    assert r.barrier == pytest.approx(r.height - max(r.profiles["train"].losses[[0, -1]]))


def test_engines_agree_on_gradients_and_chunked_backward():
    x, y = classification_data(100, (6,))
    model = tiny_mlp((6, 8, 3), seed=0)
    a = Objective(model, F.cross_entropy).flat_params()
    b = Objective(tiny_mlp((6, 8, 3), seed=2), F.cross_entropy).flat_params()
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
        # one backward pass per point, per data chunk when the two-pass scheme goes chunk by chunk
        assert obj.work.backward_passes == (9 * 4 if budget == 0 else 9), (engine, chunk, budget)
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0], rtol=1e-4, atol=1e-6)


def test_fourier_on_a_network_keeps_endpoints_and_does_not_touch_the_module():
    x, y = classification_data(96, (6,))
    model = trained(0, x, y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = Objective(model, F.cross_entropy, (x, y))
    a, b = obj.flat_params(), Objective(trained(1, x, y), F.cross_entropy).flat_params()
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
    x, y = classification_data(80, (6,))  # two equal chunks: size-weighted = cumulative average
    model = tiny_mlp((6, 8, 3), seed=0, batchnorm=True)
    model.train()
    with torch.no_grad():
        model(x * 3 + 1)  # give the running stats non-trivial values
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=40)
    a = obj.flat_params()
    b = Objective(tiny_mlp((6, 8, 3), seed=1, batchnorm=True), F.cross_entropy).flat_params()
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
        bn = ref[2]
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


def _naive_recomputed(model, points, x, y, chunk: int) -> list[float]:
    """Per point: a copy of the model at the point, BatchNorm statistics reset and re-estimated
    as the cumulative average over the training chunks (momentum None), then eval mode."""
    out = []
    for p in points:
        ref = copy.deepcopy(model)
        torch.nn.utils.vector_to_parameters(p, ref.parameters())
        for m in ref.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.reset_running_stats()
                m.momentum = None
        ref.train()
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk):
                ref(x[i:i + chunk])
            ref.eval()
            out.append(float(F.cross_entropy(ref(x), y)))
    return out


@pytest.mark.slow
def test_resnet_barrier_with_recomputed_batchnorm_equals_the_naive_loop():
    x, y = classification_data(24, (1, 12, 12), 10)
    a_model = build_model("resnet6", seed=0, in_channels=1, image_size=12).double()
    b_model = build_model("resnet6", seed=1, in_channels=1, image_size=12).double()
    x = x.double()
    obj = Objective(a_model, F.cross_entropy, (x, y), chunk_size=12)
    a = obj.flat_params()
    b = torch.nn.utils.parameters_to_vector(b_model.parameters()).detach()
    result = linear_barrier(obj, a, b, points=5, splits=("train",), batchnorm="recompute")
    assert result.batchnorm == "recompute"
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    want = _naive_recomputed(a_model, (1 - t)[:, None] * a + t[:, None] * b, x, y, chunk=12)
    torch.testing.assert_close(torch.as_tensor(result.losses), torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    frozen = linear_barrier(obj, a, b, points=5, splits=("train",))
    assert frozen.batchnorm == "eval" and not torch.allclose(torch.as_tensor(frozen.losses), torch.tensor(want, dtype=torch.float64))
    # FourierPathFinder runs on the BatchNorm ResNet and keeps its endpoints
    path = FourierPathFinder(n_terms=2, points=5, steps=3, lr=1e-3, batchnorm="recompute",
                             progress=False).find(obj, a, b)
    assert path.batchnorm == "recompute" and torch.equal(path.path.points([1.0])[0], b)
