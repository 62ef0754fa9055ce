"""compute_surface against a naive loop over the grid, on the full data or a fixed batch; the
module left untouched; results stored, resumed and refused when they belong to another model,
data or setting; bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import ReshapingCNN, classification_data, losses_at_points, regression_data, tiny_mlp
from topograph.core import Objective
from topograph.errors import UsageError
from topograph.landscape import Surface, compute_surface, fixed_batch, random_directions, user_directions

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
#: the shared tiny models on 6 inputs and 3 classes: an MLP, one with BatchNorm, a conv net
MODELS = {"mlp": lambda: tiny_mlp((6, 5, 4, 3)), "bn-mlp": lambda: tiny_mlp((6, 5, 3), batchnorm=True),
          "cnn": ReshapingCNN}


def grid_points(d, surf):
    """The parameter points of the surface's grid, in its flat order."""
    a = torch.from_numpy(np.stack([m.reshape(-1) for m in np.meshgrid(*surf.axes, indexing="ij")], 1))
    return d.points(a.to(d.vectors.dtype))


@pytest.mark.parametrize("engine", ["generic", "first-layer", "auto"])
@pytest.mark.parametrize("make", ["mlp", "bn-mlp", "cnn"])
def test_surface_equals_naive_loop_and_origin_is_model_loss(make, engine):
    torch.manual_seed(1)
    module = MODELS[make]()
    x, y = classification_data(48, (6,))
    obj = Objective(module, F.cross_entropy, {"train": (x, y)}, chunk_size=20)
    d = random_directions(obj, seed=3)
    surf = compute_surface(obj, d, range=(-1, 1), resolution=5, progress=False, engine=engine)
    # auto: the shortcut only where it pays — not for these first layers of 6 inputs or a 2×2 kernel
    assert surf.engine == ("generic" if engine == "auto" else engine)
    ref_l, ref_a = losses_at_points(module, grid_points(d, surf), x, y)
    np.testing.assert_allclose(surf.loss.reshape(-1), ref_l.numpy(), rtol=2e-5)
    np.testing.assert_allclose(surf.accuracy.reshape(-1), ref_a.numpy(), atol=1e-12)
    assert surf.value_at(0, 0)[0] == pytest.approx(obj.loss(), rel=1e-6)
    assert surf.loss[2, 2] == pytest.approx(obj.loss(), rel=1e-6)


def test_module_and_buffers_unchanged():
    module = tiny_mlp((6, 5, 3), batchnorm=True)
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    obj = Objective(module, F.cross_entropy, classification_data(48, (6,)))
    compute_surface(obj, random_directions(obj, seed=1), resolution=3, progress=False)
    assert module.training
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fixed_batch_surface():
    x, y = classification_data(40, (6,))
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, (x, y))
    d = random_directions(obj, seed=2)
    s = compute_surface(obj, d, resolution=3, batch_size=8, batch_seed=5, progress=False)
    bx, by = fixed_batch(obj, 8, seed=5)
    assert bx.shape[0] == 8 and torch.equal(fixed_batch(obj, 8, seed=5)[0], bx)
    assert s.loss[1, 1] == pytest.approx(obj.loss(batch=(bx, by)), rel=1e-6)
    assert s.settings["batch_size"] == 8 and s.settings["batch_seed"] == 5
    assert s.loss[1, 1] != pytest.approx(obj.loss(), rel=1e-6)


def test_accuracy_is_nan_for_regression():
    obj = Objective(tiny_mlp((3, 4, 1)), F.mse_loss, regression_data(20, (3,)))
    s = compute_surface(obj, random_directions(obj, dim=1), resolution=3, progress=False)
    assert np.isnan(s.accuracy).all()
    assert s.loss[1] == pytest.approx(obj.loss(), rel=1e-6)
    assert math.isfinite(s.loss[0])


def test_bad_input_is_a_usage_error():
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, classification_data(48, (6,)))
    d = random_directions(obj)
    with pytest.raises(UsageError, match="range"):
        compute_surface(obj, d, range=(1, -1), progress=False)
    with pytest.raises(UsageError, match="resolution"):
        compute_surface(obj, d, resolution=0, progress=False)
    with pytest.raises(UsageError, match="resolution"):
        compute_surface(obj, d, resolution=-3, progress=False)
    with pytest.raises(UsageError, match="direction 1"):
        user_directions(obj, [torch.zeros(obj.size + 1)])
    bad = {n: torch.zeros(2, 2) for n in obj.spec.names}
    with pytest.raises(UsageError, match="shape"):
        user_directions(obj, [bad])
    with pytest.raises(UsageError, match="split"):
        compute_surface(obj, d, split="test", progress=False)


def test_resumption_computes_only_missing_points(tmp_path):
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, classification_data(48, (6,)))
    d = random_directions(obj, seed=1)
    out = tmp_path / "s.h5"
    whole = compute_surface(obj, d, resolution=5, block_size=4, progress=False)
    part = compute_surface(obj, d, resolution=5, block_size=4, out=out, max_blocks=2, progress=False)
    assert part.work.forward_passes == 8 and part.done.sum() == 8 and not part.complete
    calls_before = obj.work.forward_passes
    seen = []
    rest = compute_surface(obj, d, resolution=5, block_size=4, out=out, progress=False,
                           on_block=lambda k, total: seen.append((k, total)))
    assert rest.work.forward_passes == 17 and seen[-1] == (17, 17)
    assert obj.work.forward_passes - calls_before == 17
    assert rest.complete
    np.testing.assert_array_equal(rest.loss, whole.loss)
    np.testing.assert_array_equal(rest.accuracy, whole.accuracy)
    again = compute_surface(obj, d, resolution=5, out=out, progress=False)
    assert again.work.forward_passes == 0
    loaded = Surface.load(out)
    np.testing.assert_array_equal(loaded.loss, whole.loss)
    assert loaded.directions.seed == 1 and loaded.settings["directions"]["options"]["norm"] == "filter"
    assert loaded.model_fingerprint and loaded.data_fingerprint and loaded.engine == whole.engine
    assert set(loaded.extra["versions"]) >= {"torch", "h5py", "topograph"}


def test_fingerprint_mismatch_names_the_file(tmp_path):
    x, y = classification_data(48, (6,))
    obj = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, (x, y))
    out = tmp_path / "s.h5"
    compute_surface(obj, random_directions(obj), resolution=2, out=out, progress=False)
    other = Objective(tiny_mlp((6, 5, 4, 3), seed=1), F.cross_entropy, (x, y))
    with pytest.raises(UsageError, match="s.h5.*different model"):
        compute_surface(other, random_directions(other), resolution=2, out=out, progress=False)
    other_data = Objective(tiny_mlp((6, 5, 4, 3)), F.cross_entropy, (x + 1, y))
    with pytest.raises(UsageError, match="different data"):
        compute_surface(other_data, random_directions(other_data), resolution=2, out=out, progress=False)
    with pytest.raises(UsageError, match="other settings"):
        compute_surface(obj, random_directions(obj), resolution=3, out=out, progress=False)
    out2 = tmp_path / "u.h5"
    compute_surface(obj, user_directions(obj, random_directions(obj, seed=4).vectors), resolution=2,
                    out=out2, progress=False)
    with pytest.raises(UsageError, match="u.h5.*other directions"):
        compute_surface(obj, user_directions(obj, random_directions(obj, seed=5).vectors), resolution=2,
                        out=out2, progress=False)
