"""Training runs and the run store (topograph.runs): the loop against naive references."""

from __future__ import annotations

import copy
import math
import tomllib

import pytest
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from topograph.data import load_dataset
from topograph.errors import UsageError
from topograph.models import build_model
from topograph.runs import Run, RunConfig, load_model, train
from topograph.runs import schedule as sched
from topograph.runs.config import ScheduleSection
from topograph.runs.config_files import apply_overrides, parse_override
from topograph.runs.early_stopping import EarlyStopping
from topograph.runs.toml_writer import dumps as toml_dumps

LIMIT = 256


def small(**over) -> dict:
    """A tiny digits config: 256 training samples, batch 32, one thread."""
    doc = {
        "run": {"name": "t", "epochs": 3, "threads": 1},
        "data": {"name": "digits", "batch_size": 32, "limit_train": LIMIT},
        "model": {"name": "mlp-digits"},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "snapshots": {"every_epochs": 1},
    }
    for key, value in over.items():
        sec, _, k = key.partition("__")
        doc.setdefault(sec, {})[k] = value
    return doc


def flat(module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit_train=LIMIT)


# ---------------------------------------------------------------------- training


@pytest.mark.parametrize("opt", [
    {"name": "sgd", "lr": 0.1},
    {"name": "momentum", "lr": 0.05},
    {"name": "nesterov", "lr": 0.05},
    {"name": "adam", "lr": 0.003},
    {"name": "gd", "lr": 0.5},
])
def test_optimizers_decrease_the_loss(tmp_path, opt):
    epochs = 8 if opt["name"] == "gd" else 3
    doc = small(run__epochs=epochs)
    doc["optimizer"] = opt
    run = train(doc, tmp_path, progress=False)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == list(range(epochs + 1))
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]
    assert rows[-1]["test_acc"] > rows[0]["test_acc"]
    steps_per_epoch = 1 if opt["name"] == "gd" else math.ceil(LIMIT / 32)
    assert rows[-1]["step"] == epochs * steps_per_epoch
    assert rows[-1]["backward_passes_total"] == epochs * steps_per_epoch  # one closure call per step
    assert rows[-1]["backward_samples_total"] == epochs * LIMIT


def test_gd_step_is_the_full_batch_gradient_step(tmp_path, digits):
    lr = 0.3
    run = train(small(run__epochs=1, optimizer__name="gd", optimizer__lr=lr, data__batch_size=32),
                tmp_path, progress=False)
    assert run.config["data"]["batch_size"] == "full"
    model = build_model("mlp-digits", seed=0)
    x, y = digits.splits["train"]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = flat(model) - lr * torch.cat([g.reshape(-1) for g in grads])
    torch.testing.assert_close(flat(run.model()), expected, rtol=0, atol=1e-6)
    assert run.metrics()[0]["train_loss"] == pytest.approx(float(loss.detach()), rel=1e-6)


def test_minibatch_sgd_equals_a_naive_loop(tmp_path, digits):
    """Same batches (seeded randperm per epoch) and torch's SGD step by step: equal weights."""
    run = train(small(run__epochs=2, optimizer__name="momentum", optimizer__lr=0.05,
                      data__batch_size=48), tmp_path, progress=False)
    model = build_model("mlp-digits", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x, y = digits.splits["train"]
    for _ in range(2):
        perm = torch.randperm(LIMIT, generator=gen)
        for i in range(0, LIMIT, 48):  # the last batch is partial (256 = 5·48 + 16)
            idx = perm[i:i + 48]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    torch.testing.assert_close(flat(run.model()), flat(model), rtol=0, atol=1e-6)


def test_sgdr_learning_rate_matches_torch_at_fractional_epochs():
    """The LR of batch i of epoch e is CosineAnnealingWarmRestarts at e + i/n (and the formula)."""
    n, lr0 = 4, 0.5
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr0)
    scheduler = sched.build_scheduler(opt, ScheduleSection(name="sgdr", t_0=1, t_mult=2), epochs=8)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
    ref = CosineAnnealingWarmRestarts(ref_opt, T_0=1, T_mult=2)
    used = {}
    for epoch in range(8):
        for i in range(n):
            t = epoch + i / n
            ref.step(t)
            lr = sched.current_lr(opt)
            used[t] = lr
            assert lr == pytest.approx(ref_opt.param_groups[0]["lr"], abs=1e-12)
            start = max(s for s in (0, 1, 3, 7) if s <= t)  # restarts of T_0=1, T_mult=2
            period = {0: 1, 1: 2, 3: 4, 7: 8}[start]
            formula = 0.5 * lr0 * (1 + math.cos(math.pi * (t - start) / period))
            assert lr == pytest.approx(formula, abs=1e-12)
            opt.step()
            sched.after_batch(scheduler, epoch, i, n)
    for restart in (1, 3, 7):
        assert used[restart] == pytest.approx(lr0)
        assert used[restart - 1 / n] < 0.2 * lr0


def test_sgdr_in_a_run_restarts_at_1_3_7(tmp_path):
    run = train(small(run__epochs=8, data__limit_train=64, data__batch_size=16,
                      schedule__name="sgdr", schedule__t_0=1, schedule__t_mult=2,
                      optimizer__lr=0.2), tmp_path, progress=False)
    lrs = {r["epoch"]: r["lr"] for r in run.metrics()}  # lr of each epoch's first step
    for e in (1, 3, 7):  # row e holds epoch e's lr, i.e. the rate at t = e - 1
        assert lrs[e + 1] == pytest.approx(0.2)
    assert lrs[3] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 1 / 2)))


def test_step_and_cosine_schedules_follow_torch(tmp_path):
    run = train(small(run__epochs=4, schedule__name="step", schedule__step_size=2, schedule__gamma=0.5),
                tmp_path / "a", progress=False)
    assert [r["lr"] for r in run.metrics()][1:] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    run = train(small(run__epochs=4, schedule__name="cosine"), tmp_path / "b", progress=False)
    expected = [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [r["lr"] for r in run.metrics()][1:] == pytest.approx(expected)


# ---------------------------------------------------------------------- early stopping


def test_early_stopping_on_nan(tmp_path):
    run = train(small(run__epochs=20, optimizer__lr=1e12), tmp_path, progress=False)
    assert run.summary["stop_reason"] == "non-finite loss"
    rows = run.metrics()
    assert len(rows) < 21 and not math.isfinite(rows[-1]["train_loss"])
    assert all(math.isfinite(r["train_loss"]) for r in rows[:-1])


def test_early_stopping_on_patience(tmp_path):
    run = train(small(run__epochs=20, optimizer__lr=1e-9, early_stopping__patience=3,
                      early_stopping__min_delta=1e-3), tmp_path, progress=False)
    assert run.summary["stop_reason"] == "no improvement for 3 epochs"
    assert run.summary["epochs"] == 3 and len(run.metrics()) == 4


def test_early_stopping_state_machine():
    es = EarlyStopping(patience=2, min_delta=0.1)
    # 0.95 is not 0.1 below 1.0 (bad 1); 0.85 is (new best); 0.8 and 0.78 are not (bad 1, 2)
    assert [es.update(v, e) for e, v in enumerate([1.0, 0.95, 0.85, 0.8, 0.78])] == [
        None, None, None, None, "no improvement for 2 epochs"]
    assert es.best == 0.85 and es.best_epoch == 2
    assert EarlyStopping(patience=0).update(float("inf"), 0) == "non-finite loss"
    assert EarlyStopping(stop_on_nonfinite=False).update(float("nan"), 0) is None


def test_monitor_val_when_there_is_a_validation_split(tmp_path):
    run = train(small(run__epochs=2, data__val_size=64), tmp_path, progress=False)
    rows = run.metrics()
    assert "val_loss" in rows[0] and "val_loss" in run.summary["best"]
    assert run.summary["dataset"]["n_val"] == 64


# ---------------------------------------------------------------------- the run store


def test_run_directory_contents_and_api(tmp_path, digits):
    run = train(small(run__epochs=2, snapshots__every_steps=4), tmp_path, progress=False)
    d = run.path
    assert d == tmp_path / "t" / "seed-0"
    for name in ("config.toml", "metrics.csv", "checkpoints/last.pt", "model.pt", "summary.json"):
        assert (d / name).is_file(), name
    assert not list(d.rglob("*.tmp"))
    cfg = tomllib.loads((d / "config.toml").read_text())
    assert cfg["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.0, "dampening": 0,
                                "weight_decay": 0, "nesterov": False}
    assert cfg["run"]["seeds"] == [0]
    # every .pt loads with weights_only=True
    ck = torch.load(d / "checkpoints/last.pt", weights_only=True)
    assert ck["finished"] and ck["loop"]["epoch"] == 2
    state = torch.load(d / "model.pt", weights_only=True)
    assert set(state) == set(build_model("mlp-digits").state_dict())
    # snapshots: initial point, every 4 steps (8 per epoch), at epoch ends (deduplicated)
    labels, snaps = run.snapshots()
    assert [s for _, s in labels] == [0, 4, 8, 12, 16]
    assert labels[2] == (1.0, 8)
    model = run.model()
    torch.testing.assert_close(snaps[-1], flat(model))
    torch.testing.assert_close(snaps[0], flat(run.model("initial")))
    # the Objective of the run reproduces the metrics
    obj = Run.open(d).objective()
    last = run.metrics()[-1]
    assert obj.loss(split="train") == pytest.approx(last["train_loss"], rel=1e-6)
    assert obj.accuracy(split="test") == pytest.approx(last["test_acc"])
    torch.testing.assert_close(flat(load_model(d)), flat(model))
    torch.testing.assert_close(flat(load_model(d / "checkpoints/last.pt")), flat(model))
    torch.testing.assert_close(flat(load_model(d / "model.pt")), flat(model))
    assert run.summary["backward_passes"] == last["backward_passes_total"] == 16


def test_finished_run_is_not_redone_and_other_configs_are_refused(tmp_path):
    doc = small(run__epochs=1)
    run = train(doc, tmp_path, progress=False)
    files = ("model.pt", "metrics.csv", "checkpoints/last.pt", "summary.json")
    stamps = [(run.path / f).stat().st_mtime_ns for f in files]
    again = train(doc, tmp_path, progress=False)
    assert [(again.path / f).stat().st_mtime_ns for f in files] == stamps
    assert again.summary == run.summary
    with pytest.raises(UsageError, match="different config.*optimizer.lr"):
        train(small(run__epochs=1, optimizer__lr=0.2), tmp_path, progress=False)


def test_several_seeds_give_several_directories(tmp_path):
    from topograph.runs import train_all

    runs = train_all(small(run__epochs=1, run__seeds=[0, 3]), tmp_path, progress=False)
    assert [r.path.name for r in runs] == ["seed-0", "seed-3"]
    assert not torch.equal(flat(runs[0].model()), flat(runs[1].model()))
    with pytest.raises(UsageError, match="seeds"):
        train(small(run__seeds=[0, 1]), tmp_path, progress=False)


# ---------------------------------------------------------------------- config


def test_config_errors_are_one_line_naming_the_key():
    cases = {
        "optimizer.lrr": ({"optimizer": {"name": "sgd", "lrr": 1}}, "unknown key 'optimizer.lrr'; allowed: name, lr, momentum"),
        "lr": ({"optimizer": {"lr": -1}}, "optimizer.lr must be a positive number, got -1"),
        "table": ({"optimiser": {}}, "unknown table [optimiser]; allowed: run, data"),
        "epochs": ({"run": {"epochs": 0}}, "run.epochs must be a positive integer, got 0"),
        "batch": ({"data": {"batch_size": "all"}}, 'data.batch_size must be a positive integer or "full"'),
        "sched": ({"schedule": {"name": "sgdrr"}}, "schedule.name must be one of 'none', 'step'"),
        "opt": ({"optimizer": {"name": "sgdd"}}, "optimizer.name must be one of sgd, momentum"),
        "model": ({"model": {"name": "mlp-digits", "width": 3}}, "unknown key 'model.width'"),
        "seeds": ({"run": {"seeds": [0, 0]}}, "run.seeds must be a non-empty list of distinct"),
    }
    for doc, message in cases.values():
        with pytest.raises(UsageError) as err:
            RunConfig.from_dict(doc, source="config.toml")
        text = str(err.value)
        assert text.startswith("config.toml: ") and message in text and "\n" not in text


def test_overrides_are_toml_values():
    assert parse_override("optimizer.lr=0.01") == ("optimizer.lr", 0.01)
    assert parse_override("run.seeds=[0,1]") == ("run.seeds", [0, 1])
    assert parse_override("data.name=digits") == ("data.name", "digits")
    assert parse_override("data.batch_size=full") == ("data.batch_size", "full")
    doc, keys = apply_overrides({"optimizer": {"name": "sgd"}}, ["optimizer.lr=0.5", "run.epochs=2"])
    cfg = RunConfig.from_dict(doc, override_keys=keys)
    assert cfg.optimizer.hyperparameters["lr"] == 0.5 and cfg.run.epochs == 2
    doc, keys = apply_overrides({}, ["optimizer.lr=-2"])
    with pytest.raises(UsageError, match=r"^c.toml \(--set\): optimizer.lr must be"):
        RunConfig.from_dict(doc, source="c.toml", override_keys=keys)
    with pytest.raises(UsageError, match="TABLE.KEY=VALUE"):
        parse_override("lr")


def test_toml_writer_round_trips():
    doc = {"run": {"name": "a b", "seeds": [0, 1], "x": 1.5e-7, "inf": math.inf, "flag": True},
           "optimizer": {"name": "guided-exploration", "base": {"name": "sgd", "lr": 0.1}},
           "data": {"path": 'C:\\data "q"', "unicode": "Müller–Brown"}}
    assert tomllib.loads(toml_dumps(doc)) == doc
    cfg = RunConfig.from_dict(small())
    assert RunConfig.from_dict(tomllib.loads(toml_dumps(cfg.to_dict()))) == cfg


def test_registry_builds_the_named_optimizers():
    from topograph.optim import build_optimizer, optimizer_names

    params = [torch.nn.Parameter(torch.zeros(2))]
    assert {"sgd", "momentum", "nesterov", "adam", "gd", "rolling-ball", "quasi-newton",
            "guided-exploration"} <= set(optimizer_names())
    opt = build_optimizer("nesterov", params, lr=0.1)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert build_optimizer("sgd", params).defaults["momentum"] == 0.0
    with pytest.raises(UsageError, match="unknown; choose one of sgd, momentum"):
        build_optimizer("sgdd", params)
    with pytest.raises(UsageError, match="no hyperparameter 'lrr'"):
        build_optimizer("adam", params, lrr=1)


def test_config_copy_is_independent():
    cfg = RunConfig.from_dict(small())
    other = cfg.for_seed(5)
    assert other.run.seeds == [5] and cfg.run.seeds == [0]
    assert copy.deepcopy(cfg) == cfg


def test_interrupted_mid_epoch_resumes_exactly(tmp_path, monkeypatch):
    """Interrupt right after a mid-epoch checkpoint (deterministically), resume, compare."""
    import topograph.runs.trainer as trainer
    from topograph.runs.store import TIME_COLUMNS

    doc = small(run__epochs=3, run__checkpoint_every_steps=3, optimizer__name="adam",
                optimizer__lr=0.003, schedule__name="sgdr", schedule__t_0=1, snapshots__every_steps=5)
    reference = train(doc, tmp_path / "ref", progress=False)
    real_save, saves = trainer.atomic_torch_save, []

    def save_then_die(path, obj):
        real_save(path, obj)
        if path.name == "last.pt":
            saves.append(obj["loop"]["batch"])
            if len(saves) == 5:  # checkpoints: init, steps 3, 6, epoch end (8), step 9 → batch 1
                raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "atomic_torch_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(doc, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    assert saves == [0, 3, 6, 0, 1]  # the last one is inside epoch 2
    resumed = train(doc, tmp_path / "cut", progress=False)

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]

    a, b = strip(resumed.metrics()), strip(reference.metrics())
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == rb[k] or (math.isnan(ra[k]) and math.isnan(rb[k])), k
    assert torch.equal(flat(resumed.model()), flat(reference.model()))
    assert torch.equal(resumed.snapshots()[1], reference.snapshots()[1])


def test_snapshots_per_epoch_are_evenly_spaced_at_any_batch_size(tmp_path):
    """per_epoch = N: snapshots after batches ⌈j·B/N⌉, j = 1..N, of each epoch's B batches (the
    last at the epoch's end), at batch size 32 (B = 8) and 128 (B = 2: every batch)."""
    for bs in (32, 128):
        run = train(small(run__epochs=2, data__batch_size=bs,
                          snapshots__every_epochs=0, snapshots__per_epoch=3), tmp_path / str(bs), progress=False)
        labels, snaps = run.snapshots()
        batches = LIMIT // bs
        marks = sorted({math.ceil(j * batches / 3) for j in (1, 2, 3)})
        steps = [0] + [e * batches + b for e in range(2) for b in marks]
        assert [s for _, s in labels] == steps
        assert [e for e, _ in labels] == pytest.approx([s / batches for s in steps])
        torch.testing.assert_close(snaps[-1], flat(run.model()))


def test_best_snapshots_hold_the_weights_at_each_metrics_minimum(tmp_path):
    """best = [train_loss, test_loss]: the saved weights reproduce the minimum of each column of
    metrics.csv, at its (first) epoch — checked against the every-epoch snapshots."""
    doc = small(run__epochs=6, optimizer__lr=2.0, data__limit_test=60,
                snapshots__best=["train_loss", "test_loss"])
    run = train(doc, tmp_path, progress=False)
    rows = run.metrics()
    labels, snaps = run.snapshots()
    obj = run.objective()
    for metric in ("train_loss", "test_loss"):
        values = [r[metric] for r in rows]
        epoch = min(range(len(values)), key=lambda e: (values[e], e))
        best = run.best_snapshot(metric)
        assert best["epoch"] == epoch and best["value"] == values[epoch] and best["metric"] == metric
        assert torch.equal(best["params"], snaps[[e for e, _ in labels].index(float(epoch))])
        assert obj.loss(best["params"], split=metric.split("_")[0]) == pytest.approx(values[epoch], rel=1e-6)
    # lr 2.0 makes the test loss rise after its minimum: the early-stopped epoch is not the last
    assert run.best_snapshot("test_loss")["epoch"] < len(rows) - 1
    with pytest.raises(UsageError, match="snapshots.best"):
        run.best_snapshot("val_loss")
    with pytest.raises(UsageError, match="snapshots.best must be a list"):
        RunConfig.from_dict(small(snapshots__best=["test_acc"]))


def test_guided_exploration_with_hessian_information_trains_through_a_config(tmp_path):
    """The trainer's closure returns the graph-attached loss for forward-only calls with
    gradients enabled, so GE's Lanczos option (hvp_iters > 0) works from a run config; it
    matches the same optimizer driven by a hand-written loop over the same batches."""
    from topograph.optim.guided import GuidedExploration

    opt = {"name": "guided-exploration", "explore_every": 1, "n_dirs": 1, "hvp_iters": 2, "sigma": 0.05,
           "base": {"name": "sgd", "lr": 0.1}}
    doc = small(run__epochs=1, data__batch_size=128)
    doc["optimizer"] = opt
    run = train(doc, tmp_path, progress=False)
    ck = torch.load(run.path / "checkpoints/last.pt", weights_only=True)
    assert ck["optimizer"]["guided"]["hvps"] == 2 * 2  # 2 steps (256 / 128) × 2 Lanczos steps
    # the same two steps by hand: the reference closure returns the attached loss itself
    data = load_dataset("digits", limit_train=LIMIT)
    x, y = data.splits["train"]
    model = build_model("mlp-digits", seed=0)
    ge = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1), explore_every=1, n_dirs=1,
                           hvp_iters=2, sigma=0.05, modules=model)
    torch.manual_seed(0)
    perm = torch.randperm(LIMIT, generator=torch.Generator().manual_seed(0))
    for i in range(2):
        xb, yb = x[perm[i * 128:(i + 1) * 128]], y[perm[i * 128:(i + 1) * 128]]

        def closure(backward=True):
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            if backward:
                loss.backward()
            return loss

        model.train()
        ge.step(closure)
    torch.testing.assert_close(flat(model), flat(run.model()), rtol=1e-5, atol=1e-6)
