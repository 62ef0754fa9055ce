"""Study keys that derive one arm from others (tune_from + tune_scale, fixed, best_of) and the
heat-map and trajectory analyses, on a tiny digits study: checked against the runs on disk."""

from __future__ import annotations

import csv

import pytest

from topograph.errors import UsageError
from topograph.studies import load_study
from topograph.studies.runner import run_study

TINY = """
[study]
name = "derived"
title = "derived arms"
cost_minutes = { default = 1, quick = 1 }
[base]
run = { epochs = 2, threads = 1 }
data = { name = "digits", batch_size = 64, limit_train = 300, limit_test = 120 }
model = { name = "mlp-digits" }
snapshots = { every_epochs = 0, per_epoch = 2 }
[[arms]]
name = "tuned"
optimizer = { name = "momentum", lr = 0.1, momentum = 0.9 }
tune = { "optimizer.lr" = { low = 0.01, high = 0.5, log = true } }
[[arms]]
name = "half"
optimizer = { name = "momentum", lr = 0.1, momentum = 0.9 }
tune_from = "tuned"
tune_scale = { "optimizer.lr" = 0.5 }
fixed = { "optimizer.momentum" = 0.5 }
[[arms]]
name = "best"
optimizer = { name = "sgd" }
best_of = { sweep = "grid", metric = "test_acc" }
set = { run = { epochs = 3 } }
[[sweeps]]
name = "grid"
optimizer = { name = "sgd" }
grid = { "optimizer.lr" = [0.05, 0.5], "data.batch_size" = [32, 128] }
[[analyses]]
kind = "heatmap"
sweep = "grid"
x = "optimizer.lr"
y = "data.batch_size"
[[analyses]]
kind = "trajectories"
points = 3
figures = [{ name = "F", sweep = "grid", vary = "data.batch_size", fixed = { "optimizer.lr" = 0.5 } }, { name = "G", arms = ["tuned"] }]
[budgets.default]
seeds = [0, 1]
[budgets.quick]
seeds = [0, 1]
trials = 2
tune_epochs = 1
tune_val_size = 60
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("derived")
    path = root / "derived.toml"
    path.write_text(TINY)
    return run_study(str(path), quick=True, out=root / "out", progress=False)


def _table(res, name):
    with open(res.study_dir / "tables" / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_derived_arms_take_the_tuned_scaled_fixed_and_best_values(study):
    from topograph.runs import Run

    def run_cfg(arm):
        return Run.open(next((study.study_dir / "runs" / arm).glob("*/seed-0"))).config

    tuned_lr = run_cfg("tuned")["optimizer"]["lr"]
    half = run_cfg("half")["optimizer"]
    assert half["lr"] == pytest.approx(0.5 * tuned_lr) and half["momentum"] == 0.5
    # the report says which tuned values a fixed key overrides (not only what was tuned)
    assert "fixed for this arm (overriding the tuned values)" in (study.study_dir / "report.html").read_text()
    # the best cell by mean test accuracy over the sweep's seeds, run with the arm's own epochs
    cells = {}
    for d in (study.study_dir / "runs").glob("grid-*"):
        runs = [Run.open(p) for p in d.glob("*/seed-*")]
        cells[d.name] = (sum(r.summary["final"]["test_acc"] for r in runs) / len(runs), runs[0].config)
    best_cfg = max(cells.values(), key=lambda c: c[0])[1]
    best = run_cfg("best")
    assert best["optimizer"]["lr"] == best_cfg["optimizer"]["lr"]
    assert best["data"]["batch_size"] == best_cfg["data"]["batch_size"] and best["run"]["epochs"] == 3


@pytest.mark.slow
def test_heatmap_cells_are_the_mean_of_each_cells_runs(study):
    from topograph.runs import Run

    rows = _table(study, "heatmap-grid")
    assert len(rows) == 4
    for row in rows:
        lr, bs = float(row["lr"]), int(row["batch_size"])
        d = study.study_dir / "runs" / f"grid-lr{lr:g}-batch_size{bs}"
        accs = [Run.open(p).summary["final"]["test_acc"] for p in d.glob("*/seed-*")]
        assert float(row["test_acc"].split(" ")[0]) == pytest.approx(sum(accs) / len(accs), abs=5e-5)


@pytest.mark.slow
def test_trajectory_rows_cover_each_run_and_plane(study):
    rows = _table(study, "trajectories")
    assert [(r["figure"], r["run"], r["plane"]) for r in rows] == [
        ("F", "batch_size=32", "random"), ("F", "batch_size=32", "pca"),
        ("F", "batch_size=128", "random"), ("F", "batch_size=128", "pca"),
        ("G", "tuned", "random"), ("G", "tuned", "pca")]
    for r in rows:
        resid = float(r["mean residual fraction"])
        assert 0.0 <= resid <= 1.0 and int(r["snapshots"]) == 5  # initial + 2 per epoch × 2 epochs
        if r["plane"] == "random":  # a random plane in 2,410 dimensions misses almost all motion
            assert resid > 0.9


def test_bad_derived_keys_are_usage_errors(tmp_path):
    for bad, match in ((TINY.replace('best_of = { sweep = "grid"', 'best_of = { sweep = "nope"'), "best_of.sweep"),
                       (TINY.replace('tune_scale = { "optimizer.lr" = 0.5 }', 'tune_scale = { "optimizer.lr" = -1 }'),
                        "tune_scale"),
                       (TINY.replace('fixed = { "optimizer.momentum" = 0.5 }', 'fixed = { momentum = 0.5 }'), "fixed")):
        p = tmp_path / "bad.toml"
        p.write_text(bad)
        with pytest.raises(UsageError, match=match):
            load_study(str(p), quick=True)


def test_arm_seeds_set_one_arms_seeds_per_mode(tmp_path):
    """budgets.MODE.arm_seeds gives one arm its own seeds in that mode only; a name that is not an
    arm, or a value that is not a list of seeds, is one line."""
    text = TINY.replace("[budgets.default]\nseeds = [0, 1]", "[budgets.default]\nseeds = [0, 1]\narm_seeds = { half = [0, 1, 2, 3] }")
    p = tmp_path / "seeds.toml"
    p.write_text(text)
    default, quick = load_study(str(p)), load_study(str(p), quick=True)
    assert default.arm("half").seeds == [0, 1, 2, 3] and default.arm("tuned").seeds == [0, 1]
    assert quick.arm("half").seeds == [0, 1]
    for value, match in (("{ nope = [0, 1] }", "arm_seeds names no arm 'nope'"), ("{ half = 3 }", "table of seed lists")):
        p.write_text(TINY.replace("[budgets.default]\nseeds = [0, 1]", f"[budgets.default]\nseeds = [0, 1]\narm_seeds = {value}"))
        with pytest.raises(UsageError, match=match) as info:
            load_study(str(p))
        assert "\n" not in str(info.value)
