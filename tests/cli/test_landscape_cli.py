"""`topograph surface` on a saved run: outputs, resumption, and one-line errors (exit code 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topograph.cli.main import main
from topograph.landscape import Surface


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from topograph.runs import train

    cfg = {
        "run": {"name": "tiny", "epochs": 3, "seeds": [0]},
        "data": {"name": "digits", "batch_size": 32, "limit_train": 120, "limit_test": 60},
        "model": {"name": "mlp-digits"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "snapshots": {"every_epochs": 1},
    }
    return train(cfg, tmp_path_factory.mktemp("runs"), progress=False).path


@pytest.mark.slow
def test_surface_command_writes_file_and_plots(run_dir, tmp_path, capsys):
    out = tmp_path / "s.h5"
    rc = main(["surface", str(run_dir), "--resolution", "3", "--out", str(out), "--plot", "--trajectory"])
    assert rc == 0, capsys.readouterr().err
    s = Surface.load(out)
    assert s.complete and s.loss.shape == (3, 3) and s.directions.kind == "pca"
    assert (tmp_path / "s-contour.png").exists() and (tmp_path / "s-contour.svg").exists()
    assert (tmp_path / "s-3d.png").exists()
    text = capsys.readouterr().out
    assert "9/9 points (9 computed now" in text and "trajectory tiny" in text
    rc = main(["surface", str(run_dir), "--resolution", "3", "--out", str(out), "--trajectory"])
    assert rc == 0 and "(0 computed now" in capsys.readouterr().out
    # without --range the map's window holds the whole projected path
    from topograph.landscape import project
    from topograph.runs import Run

    steps, snaps = Run.open(run_dir).snapshots()
    coords = project(snaps, s.directions, steps=steps).coordinates
    for axis, c in zip(s.axes, np.asarray(coords).T):
        assert axis.min() <= c.min() and c.max() <= axis.max()


def test_surface_command_one_dimensional_batch(run_dir, tmp_path, capsys):
    rc = main(["surface", str(run_dir), "--dim", "1", "--resolution", "5", "--batch-size", "16",
               "--split", "test", "--out", str(tmp_path / "c.h5"), "--plot"])
    assert rc == 0, capsys.readouterr().err
    s = Surface.load(tmp_path / "c.h5")
    assert s.loss.shape == (5,) and np.isfinite(s.loss).all() and s.settings["batch_size"] == 16
    assert (tmp_path / "c.png").exists()


@pytest.mark.parametrize("args, word", [
    (["--range", "1", "-1"], "--range"),
    (["--resolution", "0"], "--resolution"),
    (["--resolution", "-2"], "--resolution"),
    (["--split", "nope"], "--split"),
])
def test_bad_input_one_line_exit_2(run_dir, tmp_path, capsys, args, word):
    rc = main(["surface", str(run_dir), "--out", str(tmp_path / "x.h5"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and word in err


def test_missing_checkpoint_one_line_exit_2(tmp_path, capsys):
    rc = main(["surface", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "missing.pt" in err


def test_mismatched_file_one_line_exit_2(run_dir, tmp_path, capsys):
    out = tmp_path / "m.h5"
    assert main(["surface", str(run_dir), "--resolution", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    rc = main(["surface", str(run_dir), "--resolution", "2", "--seed", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "m.h5" in err
