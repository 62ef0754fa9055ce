"""Barriers between two ResNets with BatchNorm: recomputed statistics against a naive loop."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from tests.helpers import classification_data
from topograph.core import Objective
from topograph.models import build_model
from topograph.paths import FourierPathFinder, linear_barrier


def _naive_recomputed(model, points, x, y, chunk: int) -> list[float]:
    """Per point: a copy of the model at the point, BatchNorm statistics reset and re-estimated
    as the cumulative average over the training chunks (momentum None), then eval mode."""
    out = []
    for p in points:
        ref = copy.deepcopy(model)
        torch.nn.utils.vector_to_parameters(p, ref.parameters())
        for m in ref.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        ref.train()
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk):
                ref(x[i:i + chunk])
            ref.eval()
            out.append(float(F.cross_entropy(ref(x), y)))
    return out


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
