"""Kill-and-resume: a run SIGKILLed mid-training and started again ends exactly like an
uninterrupted run (metrics.csv minus wall times, final weights, snapshots)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from topograph.runs import Run, train
from topograph.runs.config import load_config
from topograph.runs.store import TIME_COLUMNS

CONFIG = """
[run]
name = "resume"
epochs = 6
threads = 1
checkpoint_every_steps = 20

[data]
name = "digits"
batch_size = 8
limit_train = 720

[optimizer]
name = "momentum"
lr = 0.01

[schedule]
name = "sgdr"
t_0 = 1
t_mult = 2

[snapshots]
every_epochs = 1
every_steps = 50
"""


def metrics_without_times(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(fh)]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_run_resumes_to_the_same_result(tmp_path):
    cfg_path = tmp_path / "resume.toml"
    cfg_path.write_text(CONFIG)
    reference = train(load_config(cfg_path), tmp_path / "reference", progress=False)

    out = tmp_path / "killed"
    run_dir = out / "resume" / "seed-0"
    cmd = [sys.executable, "-m", "topograph.cli.main", "train", str(cfg_path), "--out", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:  # kill once epoch 1 is written and training is under way in epoch 2
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = run_dir / "metrics.csv"
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (run_dir / "summary.json").exists(), "the run finished before it was killed"
    assert (run_dir / "checkpoints" / "last.pt").exists()
    partial = metrics_without_times(run_dir)
    assert 2 <= len(partial) < 7  # epochs 0 and 1 at least, not all 6

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = Run.open(run_dir)
    assert resumed.summary["status"] == "completed"
    assert metrics_without_times(run_dir) == metrics_without_times(reference.path)
    for a, b in zip(resumed.model().parameters(), reference.model().parameters()):
        assert torch.equal(a, b)
    labels_a, snaps_a = resumed.snapshots()
    labels_b, snaps_b = reference.snapshots()
    assert labels_a == labels_b and torch.equal(snaps_a, snaps_b)
    assert resumed.summary["backward_passes"] == reference.summary["backward_passes"]
