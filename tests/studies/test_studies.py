"""Every shipped study end-to-end in --quick mode, the CLI, resumption after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topograph.cli.main import main
from topograph.studies import list_studies, load_study, study_names
from topograph.studies.runner import run_study

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
STUDIES = ["quickstart", "escape", "topography", "rolling-ball", "guided-exploration", "optimizer-comparison"]
FASHION = {"rolling-ball", "guided-exploration", "optimizer-comparison"}


@pytest.fixture
def data_env(monkeypatch):
    if not os.environ.get("TOPOGRAPH_DATA_DIR") and (SHARED_DATA / "fashion-mnist").exists():
        monkeypatch.setenv("TOPOGRAPH_DATA_DIR", str(SHARED_DATA))
    root = Path(os.environ.get("TOPOGRAPH_DATA_DIR", "")) / "fashion-mnist"
    return root.exists()


def test_all_studies_shipped_and_listed(capsys):
    assert set(STUDIES) <= set(study_names())
    listed = {s["name"]: s for s in list_studies()}
    for name in STUDIES:
        assert listed[name]["default_minutes"] <= 120 and listed[name]["quick_minutes"] <= 5
        for quick in (False, True):
            spec = load_study(name, quick=quick)
            assert spec.arms
            if not quick:  # final numbers need >= 5 seeds (topography uses sets of solutions)
                assert all(len(a.seeds) >= 5 for a in spec.arms if not a.sweep)
    assert main(["study", "--list"]) == 0
    assert "guided-exploration" in capsys.readouterr().out


def test_unknown_study_is_a_usage_error(capsys):
    assert main(["study", "no-such-study"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown study 'no-such-study'" in err and "quickstart" in err


@pytest.mark.parametrize("name", STUDIES)
def test_study_quick_end_to_end(name, tmp_path, data_env, request):
    if name in FASHION and not data_env:
        if os.environ.get("CI") == "true":
            pytest.fail("Fashion-MNIST not found: set TOPOGRAPH_DATA_DIR (CI provides ../shared/data)")
        pytest.skip("Fashion-MNIST not found (set TOPOGRAPH_DATA_DIR)")
    res = run_study(name, quick=True, out=tmp_path, progress=False)
    html = res.report.read_text()
    spec = load_study(name, quick=True)
    results = json.loads((res.study_dir / "results.json").read_text())
    # every arm ran every seed, and the tables carry the numbers the runs hold
    for arm in spec.arms:
        got = results["arms"][arm.name]
        assert got["seeds"] == arm.seeds
        assert all(0.0 <= a <= 1.0 for a in got["test_acc"])
    tables = {p.stem for p in res.tables}
    assert {"results", "compute"} <= tables
    if spec.comparisons:
        rows = (res.study_dir / "tables" / "comparisons.csv").read_text().splitlines()
        assert len(rows) == 1 + len(spec.comparisons)
        assert all("p=" in r or "not testable" in r for r in rows[1:])
    # tuning: every tuned arm had exactly the same number of finished trials
    if results["tuning"]:
        counts = {a: t["complete"] + t["pruned"] for a, t in results["tuning"].items()}
        assert set(counts.values()) == {spec.budget.trials}, counts
    assert "QUICK mode" in html and "analysis" not in _failures(html), _failures(html)
    if name == "quickstart":  # the full report renders in Chromium (plotly figures + no console errors)
        from tests.studies.test_report import check_renders

        n_plotly = html.count("plotly-figure")
        assert n_plotly >= 1
        check_renders(res.report, tmp_path, n_plotly, "study-quickstart-quick.png")


def _failures(html: str) -> str:
    import re

    return " | ".join(re.findall(r"analysis '[^']+' failed[^<]*", html))


def _run_until(cmd, cwd, ready, timeout=120):
    """Start the study, SIGKILL it as soon as ``ready()`` holds."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_resume_after_sigkill(tmp_path):
    """Kill a study during tuning and again after a final run; the rerun completes without redoing
    finished trials or runs, and every tuned arm ends with exactly its trial budget."""
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    out = tmp_path / "out"
    base = out / "tiny" / "quick"
    cmd = [sys.executable, "-m", "topograph.cli.main", "study", str(study), "--quick", "--out", str(out),
           "--quiet"]

    def summaries(pattern):
        return {p: p.stat().st_mtime_ns for p in base.glob(pattern)}

    _run_until(cmd, tmp_path, lambda: bool(summaries("tuning/a/*/seed-*/summary.json")))
    trials_first = summaries("tuning/a/*/seed-*/summary.json")
    assert trials_first and not (base / "report.html").exists()
    _run_until(cmd, tmp_path, lambda: bool(summaries("runs/a/*/seed-0/summary.json")))
    runs_first = summaries("runs/*/*/seed-*/summary.json")
    assert runs_first and not (base / "report.html").exists()
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    runs_after = summaries("runs/*/*/seed-*/summary.json")
    assert len(runs_after) == 4 and all(runs_after[p] == t for p, t in runs_first.items())  # not redone
    trials_after = summaries("tuning/a/*/seed-*/summary.json")
    assert all(trials_after[p] == t for p, t in trials_first.items())
    results = json.loads((base / "results.json").read_text())
    assert results["tuning"]["a"]["complete"] + results["tuning"]["a"]["pruned"] == 2
    assert (base / "report.html").exists() and (base / "tables" / "comparisons.csv").exists()


TINY = """
[study]
name = "tiny"
title = "tiny"
cost_minutes = { default = 1, quick = 1 }
[base]
run = { epochs = 3, threads = 1 }
data = { name = "digits", batch_size = 64, limit_train = 400, limit_test = 200 }
model = { name = "mlp-digits" }
[[arms]]
name = "a"
optimizer = { name = "sgd", lr = 0.1 }
tune = { "optimizer.lr" = { low = 0.01, high = 0.5, log = true } }
[[arms]]
name = "b"
optimizer = { name = "adam", lr = 0.01 }
[[comparisons]]
a = "a"
b = "b"
[budgets.default]
seeds = [0, 1]
[budgets.quick]
seeds = [0, 1]
trials = 2
tune_epochs = 2
"""


def test_trial_of_a_dead_process_is_failed_and_reenqueued(tmp_path):
    import socket

    import optuna
    from optuna.trial import TrialState

    from topograph.studies.tuning import _mark_dead_trials, default_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.create_study(study_name="s", storage=default_storage(tmp_path))
    t_dead = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    t_dead.set_user_attr("host", socket.gethostname())
    t_dead.set_user_attr("pid", dead.pid)
    t_alive = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    t_alive.set_user_attr("host", socket.gethostname())
    t_alive.set_user_attr("pid", os.getpid())
    _mark_dead_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[t_dead.number] == TrialState.FAIL and states[t_alive.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == t_dead.params
