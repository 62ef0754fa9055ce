"""`topograph train` and `topograph quickstart` through the CLI entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from topograph.cli.main import main
from topograph.runs import Run

GOOD = """
[run]
name = "cli"
epochs = 2
threads = 1

[data]
name = "digits"
batch_size = 64
limit_train = 128

[optimizer]
name = "adam"
lr = 0.01
"""


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    return path


@pytest.mark.parametrize("args, message", [
    (["--set", "optimizer.lrr=0.1"], "config.toml (--set): unknown key 'optimizer.lrr'; allowed: name, lr, betas"),
    (["--set", "optimizer.lr=-1"], "config.toml (--set): optimizer.lr must be a positive number, got -1"),
    (["--set", "run.seeds=zero"], "run.seeds must be a non-empty list"),
    (["--set", "lr=1"], "expected TABLE.KEY=VALUE"),
])
def test_bad_override_is_one_line_exit_2(config, tmp_path, capsys, args, message):
    code = main(["train", str(config), "--out", str(tmp_path / "out"), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_key_in_file_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("lr = 0.01", "lr = 0.01\nmomentum = 0.9"))
    assert main(["train", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: unknown key 'optimizer.momentum'; allowed:" in err and err.count("\n") == 1
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: no such config file" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_error_has_no_traceback_in_a_real_process(config, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "topograph.cli.main", "train", str(config), "--set", "schedule.name=sgdrr"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "schedule.name must be one of 'none', 'step', 'cosine', 'sgdr', got 'sgdrr'" in proc.stderr


def test_train_with_overrides_writes_one_run_per_seed(config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out), "--quiet", "--set", "run.seeds=[0,1]",
                 "--set", "optimizer.lr=0.02"]) == 0
    table = capsys.readouterr().out
    assert "cli" in table
    for seed in (0, 1):
        run = Run.open(out / "cli" / f"seed-{seed}")
        assert run.config["optimizer"]["lr"] == 0.02 and run.config["run"]["seeds"] == [seed]
        assert run.summary["epochs"] == 2


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("sgd", "momentum", "adam"):
        assert name in out
        run = Run.open(tmp_path / name / "seed-0")
        rows = run.metrics()
        assert run.summary["status"] in ("completed", "stopped")
        assert rows[-1]["train_loss"] < 0.2 * rows[0]["train_loss"]
        assert rows[-1]["test_acc"] > 0.9  # digits: 10 classes, chance 0.1
        assert f"{100 * rows[-1]['test_acc']:.2f}%" in out  # the table shows the final numbers
        assert f"{rows[-1]['test_loss']:.4f}" in out
    # the analyses: map, curvature at each solution, barrier between SGD and Adam
    analysis = tmp_path / "analysis"
    for fig in ("surface.png", "surface.svg", "paths/paths.png"):
        assert (analysis / fig).stat().st_size > 1000, fig
    import json

    import torch

    from topograph.curvature import HessianOperator, lanczos

    curv = json.loads((analysis / "curvature.json").read_text())
    adam = Run.open(tmp_path / "adam" / "seed-0")
    dense_top = lanczos(HessianOperator(adam.objective()), k=1, tol=1e-8, max_steps=200).eigenvalues[0].item()
    assert curv["adam"]["top_eigenvalue"] == pytest.approx(dense_top, rel=1e-2)
    assert f"{curv['adam']['top_eigenvalue']:.4f}" in out
    barrier = json.loads((analysis / "barrier.json").read_text())
    obj = adam.objective()
    a, b = Run.open(tmp_path / "sgd" / "seed-0").objective().flat_params(), obj.flat_params()
    naive = max(obj.loss((1 - t) * a + t * b) for t in torch.linspace(0, 1, 101).tolist())
    assert barrier["straight"]["H"] == pytest.approx(naive, rel=1e-4)
    assert barrier["fourier"]["H"] <= barrier["straight"]["H"] + 1e-6
    # a second run reuses everything, and says so
    assert main(["quickstart", "--out", str(tmp_path), "--quiet"]) == 0
    assert f"reusing 3 finished runs and the map, curvature, barrier in {tmp_path}" in capsys.readouterr().out
