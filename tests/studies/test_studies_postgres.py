"""Two workers tune one study on a real PostgreSQL server; one is killed with SIGKILL mid-trial.

What a lab runs on two machines (docs/studies.md): the same ``topograph study ... --storage
postgresql+psycopg://...`` command on each, every worker with its own output folder.  Here both
run on this machine against a server the ``postgres_url`` fixture starts in a temporary folder.
The survivor runs the dead worker's trial again (same number, same parameters), the study ends
with exactly its budget of finished trials, and its tables equal those of one worker alone.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STUDY = """
[study]
name = "duo"
title = "two workers"
cost_minutes = { default = 1, quick = 1 }
[base]
run = { epochs = 2, threads = 1 }
data = { name = "digits", batch_size = 1, limit_train = 600, limit_test = 200 }
model = { name = "mlp-digits" }
[[arms]]
name = "a"
optimizer = { name = "sgd", lr = 0.05 }
tune = { "optimizer.lr" = { low = 0.005, high = 0.2, log = true } }
[[arms]]
name = "b"
optimizer = { name = "adam", lr = 0.003 }
[[comparisons]]
a = "a"
b = "b"
[budgets.default]
seeds = [0, 1]
[budgets.quick]
seeds = [0, 1]
trials = 2
startup_trials = 2  # every trial a seeded start-up draw: the same trials whichever worker runs them
tune_epochs = 40  # a trial of ~6 s: long enough that both workers are inside one at once
"""

#: columns that differ between any two runs of a study (wall time, where the files went)
UNSTABLE = {"seconds", "run dir"}


def _study(config: Path, out: Path, storage: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "topograph.cli.main", "study", str(config), "--quick", "--out", str(out), "--quiet"]
    return cmd + (["--storage", storage] if storage else [])


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def _trial_in_progress(out: Path) -> Path | None:
    """A tuning run of this worker that has started (checkpoint written) and not finished."""
    for run in (out / "duo" / "quick" / "tuning" / "a").glob("*/seed-*"):
        if (run / "checkpoints").is_dir() and not (run / "summary.json").exists():
            return run
    return None


def _tables(out: Path) -> dict[str, list[dict[str, str]]]:
    tables = {}
    for path in sorted((out / "duo" / "quick" / "tables").glob("*.csv")):
        with path.open(newline="") as fh:
            tables[path.stem] = [{k: v for k, v in row.items() if k not in UNSTABLE} for row in csv.DictReader(fh)]
    return tables


@pytest.mark.slow
def test_two_workers_one_killed_mid_trial_finish_the_study_like_one_worker(tmp_path, postgres_url):
    import optuna
    from optuna.trial import TrialState

    config = tmp_path / "duo.toml"
    config.write_text(STUDY)
    outs = {name: tmp_path / f"worker-{name}" for name in ("a", "b")}
    workers = {name: subprocess.Popen(_study(config, out, postgres_url), cwd=tmp_path, env=_env(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for name, out in outs.items()}
    try:
        # both tune at once: kill worker b as soon as each worker is inside a trial
        deadline = time.time() + 300
        while time.time() < deadline and all(w.poll() is None for w in workers.values()):
            if _trial_in_progress(outs["a"]) and _trial_in_progress(outs["b"]):
                break
            time.sleep(0.01)
        killed_run = _trial_in_progress(outs["b"])
        assert killed_run is not None and _trial_in_progress(outs["a"]) is not None, (
            "the two workers were never inside a trial at the same time: "
            + " | ".join(f"{n}: rc={w.poll()}" for n, w in workers.items()))
        os.kill(workers["b"].pid, signal.SIGKILL)
        assert workers["b"].wait(timeout=60) == -signal.SIGKILL
        _, err = workers["a"].communicate(timeout=600)
        assert workers["a"].returncode == 0, err[-3000:]
    finally:
        for w in workers.values():
            if w.poll() is None:
                w.kill()
                w.wait()
    assert not (killed_run / "summary.json").exists()  # the killed trial never finished there

    # every trial accounted for: exactly the budget, all finished, the killed one run again
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name="duo-v1-quick-a", storage=postgres_url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["interrupted"] == 1
    assert Path(interrupted[0].user_attrs["run_dir"]).parent.name == killed_run.parent.name  # same parameters

    # the same tables as one worker alone (its own SQLite storage), but for the interrupted count
    alone = tmp_path / "alone"
    proc = subprocess.run(_study(config, alone), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shared, single = _tables(outs["a"]), _tables(alone)
    assert set(shared) == set(single) and {"results", "comparisons", "tuning", "compute"} <= set(shared)
    assert shared["tuning"][0].pop("interrupted") == "1" and single["tuning"][0].pop("interrupted") == "0"
    assert shared["tuning"][0]["failed"] == "0"
    assert shared == single
