"""`topograph paths` killed with SIGKILL and run again ends with the uninterrupted result.

The reference and the killed command run as subprocesses with the same environment (one
thread), so the comparison is bitwise: the found path's profiles and history, the heights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from topograph.io import safe_torch_load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from topograph.runs import train

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = {"run": {"name": "r", "epochs": 2, "seeds": [0, 1, 2], "threads": 1},
               "data": {"name": "digits", "batch_size": 32, "limit_train": 300, "limit_test": 100},
               "model": {"name": "mlp-digits"}, "optimizer": {"name": "sgd", "lr": 0.2}}
        base = tmp_path_factory.mktemp("runs")
        for seed in (0, 1, 2):
            train(cfg, base, seed=seed, progress=False)
    finally:
        torch.set_num_threads(n)
    return [base / "r" / f"seed-{s}" for s in (0, 1, 2)]


def _cmd(*args):
    return [sys.executable, "-m", "topograph.cli.main", "paths", *map(str, args)]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _kill_when(cmd, cwd, ready, timeout=300):
    """Start ``cmd``; SIGKILL it as soon as ``ready()`` holds; return what ``ready`` returned."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline and proc.poll() is None:
        got = ready()
        if got:
            break
        time.sleep(0.01)
    finished = proc.poll() is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not finished, f"the command ended before the kill: {proc.stderr.read()[-2000:]!r}"
    assert got, "the kill condition never held"
    return got


@pytest.mark.slow
def test_killed_path_search_resumes_to_the_uninterrupted_result(runs, tmp_path):
    a, b = runs[0], runs[1]
    args = (a, b, "--steps", "60", "--points", "9")
    _run(_cmd(*args, "--out", tmp_path / "ref"), tmp_path)
    out = tmp_path / "killed"

    def checkpoint_mid_search():
        for p in (out / "checkpoints").glob("fourier-*.pt"):
            try:
                state = safe_torch_load(p)["state"]
            except Exception:  # noqa: BLE001 - never half-written (atomic); a race with the rename
                continue
            return state
        return None

    state = _kill_when(_cmd(*args, "--out", out), tmp_path, checkpoint_mid_search)
    assert not state["finished"] and 0 < state["step"] < 60
    assert not (out / "paths.json").exists()
    _run(_cmd(*args, "--out", out), tmp_path)
    ref, got = np.load(tmp_path / "ref" / "path-fourier.npz"), np.load(out / "path-fourier.npz")
    assert sorted(ref.files) == sorted(got.files)
    for key in ref.files:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    r, g = json.loads((tmp_path / "ref" / "paths.json").read_text()), json.loads((out / "paths.json").read_text())
    assert g["fourier"]["height"] == r["fourier"]["height"] and g["fourier"]["barrier"] == r["fourier"]["barrier"]
    assert g["fourier"]["work"] == r["fourier"]["work"]


@pytest.mark.slow
def test_killed_barrier_matrix_redoes_only_the_missing_pairs(runs, tmp_path):
    args = ("--runs", *runs, "--method", "fourier", "--steps", "30", "--points", "9")
    _run(_cmd(*args, "--out", tmp_path / "ref"), tmp_path)
    out = tmp_path / "killed"

    def one_pair_done():
        done = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("pair-*.json")}
        return done if done else None

    before = _kill_when(_cmd(*args, "--out", out), tmp_path, one_pair_done)
    assert len(before) < 3 and not (out / "solutions.json").exists()
    _run(_cmd(*args, "--out", out), tmp_path)
    after = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("pair-*.json")}
    assert len(after) == 3 and all(after[p] == t for p, t in before.items())  # not redone
    assert not list((out / "checkpoints").glob("*-search"))
    ref = json.loads((tmp_path / "ref" / "solutions.json").read_text())
    got = json.loads((out / "solutions.json").read_text())
    for key in ("heights", "barriers", "spanning_tree", "mean_height", "labels", "method"):
        assert got[key] == ref[key], key
    for name in Path(tmp_path / "ref" / "checkpoints").glob("pair-*.npz"):
        r, g = np.load(name), np.load(out / "checkpoints" / name.name)
        for key in r.files:
            np.testing.assert_array_equal(g[key], r[key], err_msg=f"{name.name} {key}")
