"""The optimizer demonstrations on analytic landscapes: basins, vectorisation, labels, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from topograph.cli.main import main
from topograph.data.analytic import get_landscape
from topograph.optim.demo_report import plot_basins
from topograph.optim.demos import basin_map, demo_optimizers, label_points, run_many, run_trajectories, sgdr_escape

DT = torch.float64


def test_gd_reaches_each_himmelblau_minimum_from_starts_next_to_it():
    ls = get_landscape("himmelblau")
    (gd,) = demo_optimizers(ls, only=("GD",))
    offsets = torch.tensor([[dx, dy] for dx in (-0.3, 0.0, 0.3) for dy in (-0.3, 0.0, 0.3)], dtype=DT)
    for m in ls.minima:
        starts = torch.tensor(m.point, dtype=DT) + offsets
        ends = run_many(ls, gd, starts, 150)
        assert label_points(ls, ends) == [m.label] * len(starts)
        assert torch.allclose(ends, torch.tensor(m.point, dtype=DT).expand_as(ends), atol=1e-4)


@pytest.mark.slow
def test_basin_map_on_a_small_grid():
    ls = get_landscape("himmelblau")
    bm = basin_map(ls, demo_optimizers(ls, only=("GD", "Adam")), grid=9, steps=150)
    for label in ("GD", "Adam"):
        assert len(bm.labels[label]) == 81
        assert math.isclose(sum(bm.fractions[label].values()), 1.0)
    gd = bm.fractions["GD"]
    assert all(gd[m.label] > 0.1 for m in ls.minima)  # every basin is found from the grid
    # the grid point nearest to each minimum is labelled by that minimum
    for m in ls.minima:
        i = int((bm.starts["GD"] - torch.tensor(m.point, dtype=DT)).norm(dim=1).argmin())
        assert bm.labels["GD"][i] == m.label


@pytest.mark.parametrize("label", ["GD", "momentum", "Adam"])
def test_vectorised_runs_equal_one_run_per_start(label):
    ls = get_landscape("muller-brown")
    (setup,) = demo_optimizers(ls, only=(label,))
    assert setup.vectorized
    starts = torch.tensor([[-0.5, 1.2], [0.5, 0.2], [0.0, 0.6], [-1.0, 0.5]], dtype=DT)
    together = run_many(ls, setup, starts, 40)
    alone = torch.stack([run_many(ls, setup, s[None], 40)[0] for s in starts])
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)


def test_label_points_none_and_diverged():
    ls = get_landscape("tilted-double-well")
    pts = torch.tensor([[-1.03, 0.01], [0.96, 0.0], [0.07, 0.0], [float("nan"), 0.0], [50.0, 0.0]], dtype=DT)
    assert label_points(ls, pts) == ["global", "local", "none", "diverged", "diverged"]


def test_trajectories_and_plot(tmp_path):
    ls = get_landscape("tilted-double-well")
    setups = demo_optimizers(ls, only=("GD", "QN", "GE(SGD)"))
    paths = run_trajectories(ls, setups, steps=60)
    assert {k: tuple(v.shape) for k, v in paths.items()} == {"GD": (61, 2), "QN": (61, 2), "GE(SGD)": (61, 2)}
    # from the default start (shallow basin) plain GD ends in the local minimum
    assert label_points(ls, paths["GD"][-1:]) == ["local"]
    bm = basin_map(ls, setups[:1], grid=4, steps=20)
    files = plot_basins(ls, bm, tmp_path / "basins")
    assert sorted(p.name for p in files) == ["basins.png", "basins.svg"]
    assert all(p.stat().st_size > 1000 for p in files)


@pytest.mark.slow
def test_sgdr_small_constant_rate_stays_large_rate_escapes():
    result = sgdr_escape(seeds=2, steps=300, restart_every=100)
    assert result.global_fraction["momentum, constant small η"] == 0.0
    assert result.global_fraction["momentum, constant large η"] > 0.0
    lrs = result.lrs["SGDR (warm restarts)"]
    assert lrs[0] == lrs[100] == pytest.approx(0.05) and lrs[99] < 1e-3  # a warm restart
    # the constant arm at SGDR's mean rate: the average of SGDR's rate over its full periods
    mean = result.lrs["momentum, constant mean η"]
    assert mean[0] == pytest.approx(float(np.mean(lrs)), rel=0.02) and len(set(mean)) == 1
    both = sgdr_escape(seeds=1, steps=20, restart_every=10, without_momentum=True)
    assert len(both.global_fraction) == 8 and "SGD (no momentum) + SGDR (warm restarts)" in both.paths


def test_cli_rejects_unknown_landscape(capsys):
    assert main(["demo", "--landscape", "nowhere", "--out", "x"]) == 2
    assert "unknown landscape 'nowhere'" in capsys.readouterr().err
