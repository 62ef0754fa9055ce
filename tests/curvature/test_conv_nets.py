"""Curvature of conv nets with BatchNorm and a skip connection against dense Hessians."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, cross_entropy_of_flat, dense_hessian, tiny_conv_bn
from topograph.core import Objective
from topograph.curvature import HessianOperator, curvature_summary, lanczos

DT = torch.float64


@pytest.mark.slow
def test_top_eigenvalue_and_trace_of_a_conv_net_with_batchnorm_equal_the_dense_hessian():
    torch.manual_seed(0)
    model = tiny_conv_bn(channels=2).to(DT)  # eval-mode BatchNorm with non-trivial statistics
    x, y = classification_data(30, (2, 6, 6), 3)
    x = x.to(DT)
    obj = Objective(model, F.cross_entropy, (x, y), chunk_size=8)  # four chunks
    model.eval()
    h = dense_hessian(cross_entropy_of_flat(model, x, y), obj.flat_params())
    exact = torch.linalg.eigvalsh(h)
    top = lanczos(HessianOperator(obj), k=2, which="LA", tol=1e-10, seed=0)
    torch.testing.assert_close(top.eigenvalues, exact.flip(0)[:2], rtol=1e-7, atol=1e-9)
    bottom = lanczos(HessianOperator(obj), k=1, which="SA", tol=1e-10, seed=0)
    assert abs(float(bottom.eigenvalues[0]) - float(exact[0])) < 1e-7 * float(exact.abs().max())
    summary = curvature_summary(obj, trace_probes=600, seed=0)
    assert abs(summary["trace"] - float(torch.trace(h))) < 6 * summary["trace_std_error"] + 1e-9
