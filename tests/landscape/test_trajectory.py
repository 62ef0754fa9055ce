"""Trajectories on maps: PCA directions of a planar trajectory and projections recover its known
coordinates; a trajectory map centres on the named run and holds every path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, tiny_mlp
from topograph.core import Objective
from topograph.landscape import pca_directions, project, random_directions, trajectory_map, user_directions

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


def test_pca_of_planar_trajectory_and_projection_recovers_coordinates():
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, classification_data(48, (6,)))
    p = obj.size
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(p, generator=g, dtype=torch.float64), torch.randn(p, generator=g, dtype=torch.float64)
    final = torch.randn(p, generator=g, dtype=torch.float64)
    t = torch.linspace(0, 1, 12, dtype=torch.float64)
    coords = torch.stack([torch.cos(3 * t) * (1 - t), torch.sin(2 * t) * (1 - t) ** 2], 1)
    snaps = final + coords @ torch.stack([u, v])
    d = pca_directions(obj, snaps, ignore_1d=False)
    assert sum(d.explained_variance_ratio) == pytest.approx(1.0, abs=1e-9)
    torch.testing.assert_close(d.vectors.norm(dim=1).double(), torch.ones(2, dtype=torch.float64))
    tr = project(snaps, d)
    assert np.nanmax(tr.residual_fraction) < 1e-5
    # lstsq onto the raw (non-orthogonal, non-unit) directions recovers the known coordinates
    raw = user_directions(obj, torch.stack([u, v]).float(), center=final.float())
    tr2 = project(snaps.float(), raw, label="sgd")
    np.testing.assert_allclose(tr2.coordinates, coords.numpy(), atol=1e-4)
    assert tr2.label == "sgd"
    # a random plane misses most of the motion
    tr3 = project(snaps.float(), random_directions(obj, center=final.float(), ignore_1d=False))
    assert tr3.mean_residual_fraction > 0.3


def test_trajectory_map_centres_on_the_named_run():
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, classification_data(48, (6,)))
    c = obj.flat_params()
    g = torch.Generator().manual_seed(0)
    walk = lambda: c + torch.cumsum(0.05 * torch.randn(6, c.numel(), generator=g), 0).flip(0)  # noqa: E731
    a, b = walk(), walk()
    a[-1] = c  # "adam" ends at the objective's point
    m = trajectory_map(obj, [("sgd", b), ("adam", a)], resolution=5)
    assert torch.allclose(m.surface.directions.center, c)
    np.testing.assert_allclose(m.trajectories[1].coordinates[-1], [0, 0], atol=1e-6)
    x0, x1 = m.surface.axes
    for t in m.trajectories:  # the window holds every path
        assert x0[0] <= t.coordinates[:, 0].min() and t.coordinates[:, 0].max() <= x0[-1]
        assert x1[0] <= t.coordinates[:, 1].min() and t.coordinates[:, 1].max() <= x1[-1]
    ref = obj.loss(m.surface.directions.point([x0[2], x1[1]]))
    assert m.surface.loss[2, 1] == pytest.approx(ref, rel=1e-5)
