"""Map plots: contour, 3-D surface, curve and batch-size panels written as PNG and SVG; colour limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, tiny_mlp
from topograph.core import Objective
from topograph.landscape import compute_surface, project, random_directions
from topograph.landscape.plots import batch_size_panel, color_limits, contour_plot, curve_plot, surface_3d_plot

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


@pytest.mark.slow
def test_plots_write_png_and_svg(tmp_path):
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, classification_data(48, (6,)))
    d = random_directions(obj, seed=0)
    s2 = compute_surface(obj, d, resolution=4, progress=False)
    s1 = compute_surface(obj, random_directions(obj, dim=1), resolution=5, progress=False)
    snaps = d.points(torch.tensor([[0.5, 0.5], [0.2, 0.1], [0.0, 0.0]]))
    tr = project(snaps, d, label="sgd")
    contour_plot(s2, [tr], path=tmp_path / "c")
    surface_3d_plot(s2, path=tmp_path / "s3")
    curve_plot(s1, path=tmp_path / "one")
    batch_size_panel({"batch 1": s2, "full": s2}, path=tmp_path / "panel")
    for stem in ("c", "s3", "one", "panel"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 0 and (tmp_path / f"{stem}.svg").exists()
    assert color_limits(np.array([0.01, 0.1, 5.0]))[2] is True
    assert color_limits(np.array([1.0, 1.5, 2.0]))[2] is False
    assert color_limits(np.array([1.0, 2.0]))[:2] == (1.0, pytest.approx(1.98))
