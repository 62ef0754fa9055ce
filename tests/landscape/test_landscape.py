"""Maps: directions, the batched engine, surfaces, resumption and projections."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import vector_to_parameters

from topograph.core import Objective, SubspaceEvaluator
from topograph.errors import UsageError
from topograph.landscape import (
    Surface, compute_surface, fixed_batch, interpolation_directions,
    pca_directions, plane_directions, project, random_directions, user_directions,
)
from topograph.models import MLP


def plane(obj, d, **settings) -> SubspaceEvaluator:
    """The core evaluator of the plane of directions ``d``."""
    return SubspaceEvaluator(obj, d.center, d.vectors, **settings)


@pytest.fixture(autouse=True)
def _one_thread():  # tiny models: one thread avoids OpenMP hand-offs on a busy machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _data(n=48, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return MLP([6, 5, 4, 3])


def _bn_mlp(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))
    with torch.no_grad():  # non-trivial running statistics
        m[2].running_mean.uniform_(-0.5, 0.5)
        m[2].running_var.uniform_(0.5, 2.0)
    return m


class _CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        x = x.view(x.shape[0], 1, 3, 2)
        x = torch.relu(self.conv(nn.functional.pad(x, (0, 1, 0, 0))))
        return self.fc(x.flatten(1))


def naive_surface(module, loss_fn, x, y, points):
    """Independent reference: load each point into a copy of the module and evaluate."""
    net = copy.deepcopy(module).eval()
    losses, accs = [], []
    with torch.no_grad():
        for p in points:
            vector_to_parameters(p.to(torch.float32), [q for q in net.parameters() if q.requires_grad])
            out = net(x)
            losses.append(float(loss_fn(out, y)))
            accs.append(float((out.argmax(1) == y).float().mean()))
    return np.array(losses), np.array(accs)


def _grid_points(d, surf):
    a = torch.from_numpy(np.stack([m.reshape(-1) for m in np.meshgrid(*surf.axes, indexing="ij")], 1))
    return d.points(a.to(d.vectors.dtype))


@pytest.mark.parametrize("engine", ["generic", "first-layer", "auto"])
@pytest.mark.parametrize("make", [_mlp, _bn_mlp, _CNN])
def test_surface_equals_naive_loop_and_origin_is_model_loss(make, engine):
    torch.manual_seed(1)
    module = make()
    x, y = _data()
    obj = Objective(module, F.cross_entropy, {"train": (x, y)}, chunk_size=20)
    d = random_directions(obj, seed=3)
    surf = compute_surface(obj, d, range=(-1, 1), resolution=5, progress=False, engine=engine)
    # auto: the shortcut only where it pays — not for these first layers of 6 inputs or a 2×2 kernel
    assert surf.engine == ("generic" if engine == "auto" else engine)
    ref_l, ref_a = naive_surface(module, F.cross_entropy, x, y, _grid_points(d, surf))
    np.testing.assert_allclose(surf.loss.reshape(-1), ref_l, rtol=2e-5)
    np.testing.assert_allclose(surf.accuracy.reshape(-1), ref_a, atol=1e-12)
    assert surf.value_at(0, 0)[0] == pytest.approx(obj.loss(), rel=1e-6)
    assert surf.loss[2, 2] == pytest.approx(obj.loss(), rel=1e-6)


@pytest.mark.parametrize("make", [_mlp, _bn_mlp])
def test_first_layer_engine_equals_generic(make):
    module = make()
    x, y = _data(n=70)
    obj = Objective(module, F.cross_entropy, (x, y), chunk_size=32)
    d = random_directions(obj, seed=0, norm="layer", ignore_1d=False)  # bias directions non-zero
    coef = torch.randn(23, 2, generator=torch.Generator().manual_seed(0))
    fast = plane(obj, d, engine="first-layer", tile_elements=40, points_per_pass=4)
    slow = plane(obj, d, engine="generic")
    assert fast.resolved_engine() == "first-layer" and slow.resolved_engine() == "generic"
    lf, af = fast.evaluate(coef)
    lg, ag = slow.evaluate(coef)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0)
    torch.testing.assert_close(af, ag, rtol=0, atol=1e-12)


def test_first_layer_engine_with_a_custom_loss_and_frozen_layer():
    module = _mlp()
    module[3].weight.requires_grad_(False)  # a frozen later layer stays constant
    x, y = _data(n=30)

    def loss_fn(out, target):  # not cross_entropy: goes through vmap
        return ((out.softmax(-1) - F.one_hot(target, 3).float()) ** 2).sum(-1).mean()

    obj = Objective(module, loss_fn, (x, y))
    d = random_directions(obj, seed=4)
    coef = torch.rand(7, 2) * 2 - 1
    lf, af = plane(obj, d, engine="first-layer").evaluate(coef)
    lg, ag = plane(obj, d, engine="generic").evaluate(coef)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0)
    torch.testing.assert_close(af, ag)


def test_first_layer_shortcut_on_a_conv_net_that_reshapes_its_input():
    obj = Objective(_CNN(), F.cross_entropy, _data())  # a custom forward: view, pad, then the conv
    assert obj.first_layer()[0].name == "conv"
    d = random_directions(obj, seed=2, norm="layer", ignore_1d=False)
    coef = torch.rand(5, 2) * 2 - 1
    lf, af = plane(obj, d, engine="first-layer").evaluate(coef)
    lg, ag = plane(obj, d, engine="generic").evaluate(coef)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0)
    torch.testing.assert_close(af, ag)


def test_first_layer_requested_where_it_cannot_apply_is_a_usage_error():
    module = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    module[1].weight.requires_grad_(False)  # a frozen first weight: no directions along it
    obj = Objective(module, F.cross_entropy, _data())
    with pytest.raises(UsageError, match="first-layer.*frozen"):
        plane(obj, random_directions(obj), engine="first-layer").evaluate(torch.zeros(1, 2))


def test_filter_normalised_directions_match_weight_filter_norms():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 4))
    obj = Objective(module, F.cross_entropy)
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


def test_module_and_buffers_unchanged():
    module = _bn_mlp()
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    obj = Objective(module, F.cross_entropy, _data())
    compute_surface(obj, random_directions(obj, seed=1), resolution=3, progress=False)
    assert module.training
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_interpolation_and_plane_through_points():
    module = _mlp()
    x, y = _data()
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


def test_fixed_batch_surface():
    x, y = _data(n=40)
    obj = Objective(_mlp(), F.cross_entropy, (x, y))
    d = random_directions(obj, seed=2)
    s = compute_surface(obj, d, resolution=3, batch_size=8, batch_seed=5, progress=False)
    bx, by = fixed_batch(obj, 8, seed=5)
    assert bx.shape[0] == 8 and torch.equal(fixed_batch(obj, 8, seed=5)[0], bx)
    assert s.loss[1, 1] == pytest.approx(obj.loss(batch=(bx, by)), rel=1e-6)
    assert s.settings["batch_size"] == 8 and s.settings["batch_seed"] == 5
    assert s.loss[1, 1] != pytest.approx(obj.loss(), rel=1e-6)


def test_bad_input_is_a_usage_error():
    obj = Objective(_mlp(), F.cross_entropy, _data())
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


def test_pca_of_planar_trajectory_and_projection_recovers_coordinates():
    obj = Objective(_mlp(), F.cross_entropy, _data())
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


def test_resumption_computes_only_missing_points(tmp_path):
    obj = Objective(_mlp(), F.cross_entropy, _data())
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
    x, y = _data()
    obj = Objective(_mlp(0), F.cross_entropy, (x, y))
    out = tmp_path / "s.h5"
    compute_surface(obj, random_directions(obj), resolution=2, out=out, progress=False)
    other = Objective(_mlp(1), F.cross_entropy, (x, y))
    with pytest.raises(UsageError, match="s.h5.*different model"):
        compute_surface(other, random_directions(other), resolution=2, out=out, progress=False)
    other_data = Objective(_mlp(0), F.cross_entropy, (x + 1, y))
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


def test_accuracy_is_nan_for_regression():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(20, 3)
    y = torch.randn(20, 1)
    obj = Objective(module, F.mse_loss, (x, y))
    s = compute_surface(obj, random_directions(obj, dim=1), resolution=3, progress=False)
    assert np.isnan(s.accuracy).all()
    assert s.loss[1] == pytest.approx(obj.loss(), rel=1e-6)
    assert math.isfinite(s.loss[0])


@pytest.mark.parametrize("make", [_mlp, _CNN])
def test_vmapped_generic_path_equals_per_point_path(make):
    module = make()
    obj = Objective(module, F.cross_entropy, _data(n=30), chunk_size=16)
    d = random_directions(obj, seed=6)
    coef = torch.rand(9, 2) * 2 - 1
    lv, av = plane(obj, d, engine="generic", vectorize=True, points_per_pass=4).evaluate(coef)
    lp, ap = plane(obj, d, engine="generic", vectorize=False).evaluate(coef)
    torch.testing.assert_close(lv, lp, rtol=1e-5, atol=0)
    torch.testing.assert_close(av, ap)


def test_plots_write_png_and_svg(tmp_path):
    from topograph.landscape.plots import (batch_size_panel, color_limits, contour_plot, curve_plot,
                                           surface_3d_plot)

    obj = Objective(_mlp(), F.cross_entropy, _data())
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


def test_trajectory_map_centres_on_the_named_run():
    from topograph.landscape import trajectory_map

    obj = Objective(_mlp(), F.cross_entropy, _data())
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


def test_worker_threads_give_the_same_values_and_restore_threads():
    module = _mlp()
    obj = Objective(module, F.cross_entropy, _data(n=90), chunk_size=50)
    d = random_directions(obj, seed=9)
    coef = torch.rand(11, 2) * 2 - 1
    one = plane(obj, d, engine="first-layer", workers=1, tile_elements=64, points_per_pass=4).evaluate(coef)
    threads = torch.get_num_threads()
    two = plane(obj, d, engine="first-layer", workers=2, tile_elements=64, points_per_pass=4).evaluate(coef)
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(one[0], two[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(one[1], two[1])


def test_linear_on_the_last_axis_of_3d_inputs():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))

    def loss_fn(out, target):  # out (N, T, 3): mean over tokens
        return F.cross_entropy(out.reshape(-1, 3), target.reshape(-1))

    x = torch.randn(10, 2, 4)
    y = torch.randint(0, 3, (10, 2))
    obj = Objective(module, loss_fn, (x, y))
    d = random_directions(obj, seed=0)
    ev = plane(obj, d, engine="first-layer")
    lo, _ = ev.evaluate(torch.tensor([[0.0, 0.0], [0.3, -0.2]]))
    assert lo[0].item() == pytest.approx(obj.loss(), rel=1e-6)
    assert lo[1].item() == pytest.approx(obj.loss(d.point([0.3, -0.2])), rel=1e-6)
