"""Map directions: filter-normalised random directions have the filter norms of the weights;
interpolation lines and planes through given points pass through them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, tiny_conv_bn, tiny_mlp
from topograph.core import Objective
from topograph.landscape import compute_surface, interpolation_directions, plane_directions, random_directions

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


def test_filter_normalised_directions_match_weight_filter_norms():
    obj = Objective(tiny_conv_bn(channels=2), F.cross_entropy)  # conv filters, a linear head, 1-D params
    d = random_directions(obj, dim=2, norm="filter", seed=7)
    c = obj.flat_params()
    for v in d.vectors:
        for _, shape, sl in obj.spec.items():
            if len(shape) >= 2:
                dn = v[sl].view(shape[0], -1).norm(dim=1)
                wn = c[sl].view(shape[0], -1).norm(dim=1)
                torch.testing.assert_close(dn, wn, rtol=1e-5, atol=1e-7)
            else:
                assert torch.count_nonzero(v[sl]) == 0
    assert d.seed == 7 and d.options == {"norm": "filter", "ignore_1d": True}
    again = random_directions(obj, dim=2, norm="filter", seed=7)
    assert torch.equal(again.vectors, d.vectors)
    assert not torch.equal(random_directions(obj, seed=8).vectors, d.vectors)


def test_interpolation_and_plane_through_points():
    module = tiny_mlp((6, 5, 4, 3))
    x, y = classification_data(48, (6,))
    obj = Objective(module, F.cross_entropy, (x, y))
    a = obj.flat_params()
    g = torch.Generator().manual_seed(1)
    b, c = a + 0.3 * torch.randn(a.shape, generator=g), a - 0.2 * torch.randn(a.shape, generator=g)
    line = compute_surface(obj, interpolation_directions(obj, a, b), range=(0, 1), resolution=3,
                           progress=False)
    assert line.loss[0] == pytest.approx(obj.loss(a), rel=1e-6)
    assert line.loss[-1] == pytest.approx(obj.loss(b), rel=1e-6)
    plane = compute_surface(obj, plane_directions(obj, a, b, c), range=(0, 1), resolution=2,
                            progress=False)
    assert plane.loss[1, 0] == pytest.approx(obj.loss(b), rel=1e-6)
    assert plane.loss[0, 1] == pytest.approx(obj.loss(c), rel=1e-6)
