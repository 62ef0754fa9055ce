"""Claims read off training curves (the rolling-ball paper's "half the epochs" and "stays stable
at η = 100"): hand-made metric rows with the answers worked out by hand, synthetic loss curves of
each stability class, and the report sections on a tiny real sweep."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from topograph.runs.store import Run
from topograph.studies import load_study
from topograph.studies.curve_claims import (
    STABILITY_CLASSES, classify_stability, epochs_to_reach, fb_at, reach_row,
)
from topograph.studies.runner import run_study


def _rows(values, metric="test_acc", fb_per_epoch=10.0, f_per_epoch=None):
    """Metric rows, epoch 0 first, with running F/B and F totals (F = F/B unless given)."""
    f_per_epoch = fb_per_epoch if f_per_epoch is None else f_per_epoch
    return [{"epoch": e, metric: v, "backward_passes_total": fb_per_epoch * e, "forward_passes_total": f_per_epoch * e}
            for e, v in enumerate(values)]


def test_epochs_to_reach_is_the_first_epoch_at_or_past_the_target():
    acc = _rows([0.1, 0.5, 0.8, 0.79, 0.9])
    assert epochs_to_reach(acc, "test_acc", 0.8, higher_is_better=True) == 2      # equal counts as reached
    assert epochs_to_reach(acc, "test_acc", 0.85, higher_is_better=True) == 4
    assert epochs_to_reach(acc, "test_acc", 0.95, higher_is_better=True) == math.inf
    loss = _rows([2.3, math.nan, 0.4, 0.2], metric="train_loss")
    assert epochs_to_reach(loss, "train_loss", 0.4, higher_is_better=False) == 2   # NaN rows never reach
    assert epochs_to_reach(loss, "train_loss", 3.0, higher_is_better=False) == 0   # already at the start


def test_reach_row_against_hand_computed_ratios():
    # baseline: 10 epochs, one F/B per step, 100 steps per epoch -> 1000 F/B, final accuracy 0.90
    base = _rows([0.1, 0.6, 0.7, 0.75, 0.8, 0.83, 0.85, 0.87, 0.88, 0.89, 0.90], fb_per_epoch=100)
    # arm (a rolling ball: 11 F/B per step, 100 steps per epoch, plus 100 forward-only passes per epoch)
    arm = _rows([0.1, 0.85, 0.89, 0.91, 0.92, 0.93], fb_per_epoch=1100, f_per_epoch=1200)
    rec = reach_row(arm, base, "test_acc", higher_is_better=True)
    assert rec["target"] == 0.90 and rec["baseline epochs"] == 10 and rec["epochs to reach"] == 3
    assert rec["epoch ratio"] == pytest.approx(0.3)
    # compute: arm at epoch 3 = 3300 F/B + (3600 − 3300)/3 = 3400; baseline 1000 -> 3.4
    assert fb_at(arm[3]) == pytest.approx(3400.0)
    assert rec["compute ratio"] == pytest.approx(3.4)
    never = reach_row(_rows([0.1, 0.2]), base, "test_acc", higher_is_better=True)
    assert never["epochs to reach"] == math.inf and never["epoch ratio"] == math.inf
    assert never["compute ratio"] == math.inf
    # a loss target: the baseline's final training loss 0.05; the arm is at or below it at epoch 4 of 10
    lb = _rows(list(np.linspace(2.3, 0.05, 11)), metric="train_loss")
    la = _rows([2.3, 1.0, 0.3, 0.1, 0.05, 0.01], metric="train_loss")
    assert reach_row(la, lb, "train_loss", higher_is_better=False)["epoch ratio"] == pytest.approx(0.4)


@pytest.mark.parametrize("curve, expected", [
    ([2.30, 0.50, 0.30, 0.20], "stable"),                  # learned: 0.20 ≤ 2.30 / 2
    ([2.30, 2.00, 1.80, 1.50], "slow"),                    # never above the start, not halved
    ([2.30, 2.30, 2.30, 2.30], "slow"),                    # flat at the start: not above it
    ([2.30, 0.40, 5.00, 0.30], "unstable"),                # a rise above the start, even if it recovers
    ([2.30, 2.31, 1.00, 0.50], "unstable"),                # just above the start at epoch 1
    ([2.30, 0.50, math.nan], "diverged"),                  # the trainer stopped on a NaN
    ([2.30, math.inf, 0.5], "diverged"),
])
def test_classify_stability_on_synthetic_curves(curve, expected):
    rows = [{"epoch": e, "train_loss": v} for e, v in enumerate(curve)]
    assert classify_stability(rows) == expected


def test_classify_stability_thresholds_move_the_borders():
    rows = [{"epoch": e, "train_loss": v} for e, v in enumerate([2.0, 2.5, 1.2])]
    assert classify_stability(rows) == "unstable"
    assert classify_stability(rows, rise=1.5) == "slow"                 # 2.5 ≤ 1.5 × 2.0; 1.2 > 1.0
    assert classify_stability(rows, rise=1.5, progress=0.6) == "stable"  # 1.2 ≤ 0.6 × 2.0
    assert set(STABILITY_CLASSES) == {"diverged", "unstable", "slow", "stable"}
    with pytest.raises(ValueError):
        classify_stability([])


TINY = """
[study]
name = "claims"
title = "curve claims"
cost_minutes = { default = 1, quick = 1 }
[base]
run = { epochs = 3, threads = 1 }
data = { name = "digits", batch_size = 64, limit_train = 300, limit_test = 120 }
model = { name = "mlp-digits" }
snapshots = { every_epochs = 0 }
[[arms]]
name = "fast"
optimizer = { name = "sgd", lr = 0.5 }
[[arms]]
name = "slow"
optimizer = { name = "sgd", lr = 0.01 }
set = { run = { epochs = 4 } }
[[sweeps]]
name = "grid"
optimizer = { name = "sgd" }
grid = { "optimizer.lr" = [1e-4, 0.5, 1e4], "optimizer.momentum" = [0.0, 0.5] }
[[analyses]]
kind = "epochs_to_reach"
arm = "fast"
baselines = ["slow"]
metrics = ["test_acc", "train_loss"]
[[analyses]]
kind = "stability"
sweep = "grid"
x = "optimizer.lr"
y = "optimizer.momentum"
focus = { "optimizer.lr" = 1e4 }
[budgets.default]
seeds = [0, 1]
[budgets.quick]
seeds = [0, 1]
"""


def test_sections_match_the_runs_on_disk(tmp_path):
    """The report's tables hold exactly what the functions give on the runs' own metrics."""

    study = tmp_path / "claims.toml"
    study.write_text(TINY)
    res = run_study(study, quick=True, out=tmp_path / "out", progress=False)
    html = res.report.read_text()
    assert "analysis 'epochs_to_reach' failed" not in html and "analysis 'stability' failed" not in html
    tables = res.study_dir / "tables"
    runs = {p.parent.parent.name + "/" + p.name: Run.open(p) for p in (res.study_dir / "runs").glob("*/*/seed-*")}
    seeds = list(csv.DictReader((tables / "epochs-to-reach-fast-seeds.csv").open()))
    assert len(seeds) == 4  # 2 seeds × 2 metrics
    for row in seeds:
        a = next(r for k, r in runs.items() if k.startswith("fast/") and r.seed == int(row["seed"]))
        b = next(r for k, r in runs.items() if k.startswith("slow/") and r.seed == int(row["seed"]))
        metric = row["metric"]
        want = reach_row(a.metrics(), b.metrics(), metric, higher_is_better=not metric.endswith("loss"))
        assert float(row["target"]) == pytest.approx(want["target"], rel=1e-5)  # CSV: 6 digits
        assert float(row["epochs to reach"]) == want["epochs to reach"]
    cells = list(csv.DictReader((tables / "stability-grid.csv").open()))
    spec = load_study(study, quick=True)
    assert len(cells) == 6
    for row in cells:
        lr, mom = float(row["lr"]), float(row["momentum"])
        arm = next(a for a in spec.arms if a.sweep_values == {"optimizer.lr": lr, "optimizer.momentum": mom})
        rs = sorted((r for k, r in runs.items() if k.startswith(arm.name + "/")), key=lambda r: r.seed)
        assert len(rs) == 2
        classes = [classify_stability(r.metrics()) for r in rs]
        assert row["classes (by seed)"] == ", ".join(classes)
        if lr == 1e4:      # a step of 10,000 blows up
            assert set(classes) <= {"diverged", "unstable"}
        if lr == 1e-4:     # a step of 1e-4 cannot halve the loss in 3 epochs
            assert set(classes) == {"slow"}
    focus = list(csv.DictReader((tables / "stability-grid-focus.csv").open()))
    assert len(focus) == 2 and all(r["verdict"] == "not stable in every seed" for r in focus)
