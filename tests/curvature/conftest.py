"""Fixtures of the curvature tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, cross_entropy_of_flat, dense_hessian, tiny_mlp
from topograph.core import Objective


@pytest.fixture(scope="module")
def mlp_case():
    """A float64 MLP 5-4-3 (ReLU) on 37 samples, its Objective in 3 chunks, and the dense
    Hessian with its eigendecomposition: ``(obj, model, x, y, h, evals, evecs)``."""
    model = tiny_mlp((5, 4, 3), activation=nn.ReLU).double()
    x, y = classification_data(37, dtype=torch.float64)
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=16)  # 3 chunks
    h = dense_hessian(cross_entropy_of_flat(model, x, y), obj.flat_params())
    evals, evecs = torch.linalg.eigh(h)
    return obj, model, x, y, h, evals, evecs
