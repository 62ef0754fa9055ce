"""Every shipped study end-to-end in --quick mode, the CLI, resumption after SIGKILL."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.studies.test_report import CHROMIUM, check_renders
from topograph.cli.main import main
from topograph.studies import list_studies, load_study, study_names
from topograph.studies.runner import run_study

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
STUDIES = ["quickstart", "escape", "topography", "topography-models", "rolling-ball", "rolling-ball-conv",
           "guided-exploration", "optimizer-comparison"]
#: the data folder each study needs beyond the bundled digits
DATA = {"rolling-ball": "mnist", "rolling-ball-conv": "mnist", "topography": "mnist", "topography-models": "mnist",
        "guided-exploration": "fashion-mnist", "optimizer-comparison": "fashion-mnist"}


@pytest.fixture
def data_env(monkeypatch):
    """The data folders found (under TOPOGRAPH_DATA_DIR, or ../shared/data when it is unset)."""
    if not os.environ.get("TOPOGRAPH_DATA_DIR") and SHARED_DATA.exists():
        monkeypatch.setenv("TOPOGRAPH_DATA_DIR", str(SHARED_DATA))
    root = Path(os.environ.get("TOPOGRAPH_DATA_DIR", ""))
    return {name for name in ("mnist", "fashion-mnist") if (root / name).exists()}


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


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_study_quick_end_to_end(name, tmp_path, data_env, request):
    needs = DATA.get(name)
    if needs and needs not in data_env:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{needs} not found: set TOPOGRAPH_DATA_DIR (CI provides ../shared/data)")
        pytest.skip(f"{needs} not found (set TOPOGRAPH_DATA_DIR)")
    res = run_study(name, quick=True, out=tmp_path, progress=False)
    html = res.report.read_text()
    spec = load_study(name, quick=True)
    results = json.loads((res.study_dir / "results.json").read_text())
    # every arm ran every seed, and the tables carry the numbers the runs hold
    for arm in spec.arms:
        got = results["arms"][arm.name]
        assert got["seeds"] == arm.seeds
        if arm.config.get("model", {}).get("loss") == "mse":     # a reconstruction: no accuracy
            assert all(math.isnan(a) for a in got["test_acc"]) and all(v >= 0 for v in got["test_loss"])
        else:
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
    # the tables and figures the study's title promises
    assert EXPECTED_TABLES.get(name, set()) <= tables, EXPECTED_TABLES[name] - tables
    for title in EXPECTED_FIGURES.get(name, ()):
        assert title in html, f"no figure {title!r} in the report"
    n_plotly = html.count("plotly-figure")
    if name == "quickstart":  # the full report renders in Chromium (plotly figures + no console errors)
        assert n_plotly >= 1
        check_renders(res.report, tmp_path, n_plotly, "study-quickstart-quick.png")
    elif name in EXPECTED_FIGURES and CHROMIUM is not None:  # and the MNIST studies' figures
        dom = check_renders(res.report, tmp_path, n_plotly, f"study-{name}-quick.png")
        assert dom.count("data:image/png;base64,") == html.count("data:image/png;base64,") > 0


#: tables (CSV names) and figure titles the MNIST studies must produce in quick mode
EXPECTED_TABLES = {
    "topography": {"table-i", "final-iterates", "table-i-comparisons", "loss-curve-minima", "barriers",
                   "barrier-comparisons", "distances", "kernel-pca", "weight-statistics"},
    "topography-models": {f"{t}-{m}" for m in ("autoencoder", "lenet", "lstm")
                          for t in ("table-i", "final-iterates", "loss-curve-minima", "distances", "kernel-pca",
                                    "weight-statistics")} | {"barriers-autoencoder", "barrier-comparisons-autoencoder"},
    "rolling-ball": {"comparisons", "heatmap-radius-lr", "stability-radius-lr", "stability-radius-lr-focus",
                     "epochs-to-reach-rbo", "epochs-to-reach-rbo-seeds", "tuning"},
    "rolling-ball-conv": {"comparisons"},
}
EXPECTED_FIGURES = {
    "topography": ("Training and test loss along training", "Fig. 4 (sum objective)", "Fig. 4 (softmax objective)",
                   "Fig. S2 (sum objective)", "Fig. 5:", "Fig. S3:", "Fig. 6:", "Fig. S4:"),
    "topography-models": ("Fig. 4 (sum objective)", "Fig. 6:", "Training and test loss along training"),
    "rolling-ball": ("test_acc over radius × lr", "Worst class over the seeds of each cell", "test_acc along training",
                     "Metric curves vs epochs"),
    "rolling-ball-conv": ("Metric curves vs epochs", "Metric curves vs compute (F/B)"),
}


def _failures(html: str) -> str:
    import re

    return " | ".join(re.findall(r"analysis '[^']+' failed[^<]*", html))


def _run_until(cmd, cwd, ready, timeout=900):
    """Start the study, SIGKILL it as soon as ``ready()`` holds (the timeout only bounds a hang:
    on a loaded machine the rest of the tuning took over 2 minutes before the first final run)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
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
    # a trial the kill stopped half way was finished by the rerun: interrupted, never failed
    tuning = list(csv.DictReader((base / "tables" / "tuning.csv").open()))
    assert len(tuning) == 1 and tuning[0]["failed"] == "0" and tuning[0]["interrupted"] in ("0", "1")
    assert results["tuning"]["a"]["failed"] == 0


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


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_trial_of_a_dead_worker_waits_for_the_next_worker_as_interrupted(tmp_path, monkeypatch):
    """A RUNNING trial whose process is gone from this host, or whose heartbeat is stale (any
    host), goes back to WAITING with its number and parameters, counted as interrupted; a
    live trial with a fresh heartbeat is left alone; the next ask() takes the waiting trial."""
    import socket

    import optuna
    from optuna.trial import TrialState

    from topograph.studies import tuning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    monkeypatch.setattr(tuning, "HEARTBEAT_GRACE_SECONDS", 1)
    storage = tuning._storage(tuning.default_storage(tmp_path))
    study = optuna.create_study(study_name="s", storage=storage)
    dist = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def running(host, pid):
        t = study.ask(dist)
        t.set_user_attr("host", host)
        t.set_user_attr("pid", pid)
        storage.record_heartbeat(t._trial_id)
        return t

    t_dead = running(socket.gethostname(), dead.pid)          # this host, process gone
    t_alive = running(socket.gethostname(), os.getpid())      # this host, alive, fresh heartbeat
    t_far = running("another-host", 12345)                    # another host: only the heartbeat tells
    assert tuning._account_for_dead_trials(study, storage) == [t_dead.number]
    time.sleep(2.5)  # now every heartbeat is older than the grace period
    storage.record_heartbeat(t_alive._trial_id)
    assert tuning._account_for_dead_trials(study, storage) == [t_far.number]
    trials = {t.number: t for t in study.get_trials()}
    assert trials[t_dead.number].state == TrialState.WAITING and trials[t_far.number].state == TrialState.WAITING
    assert trials[t_alive.number].state == TrialState.RUNNING
    assert trials[t_dead.number].user_attrs["interrupted"] == 1 and "interrupted" not in trials[t_alive.number].user_attrs
    again = study.ask()  # the waiting trial is taken again: same number, same parameters
    assert again.number == t_dead.number
    assert again.suggest_float("optimizer.lr", 1e-3, 1.0, log=True) == t_dead.params["optimizer.lr"]
    assert len(study.get_trials()) == 3  # no new trial: every trial is accounted for


def test_startup_trials_are_drawn_by_trial_number():
    """The start-up draws depend on the trial's number only, not on which worker draws them or
    in which order: two samplers drawing trials 1 and 0 in opposite orders agree."""
    import optuna

    from topograph.studies.tuning import _trial_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"optimizer.lr": {"low": 1e-3, "high": 1.0, "log": True}, "data.batch_size": {"choices": [16, 32, 64]}}

    from topograph.studies.tuning import suggest

    def draws(order, seed=7):
        study = optuna.create_study(sampler=_trial_sampler(seed, startup=3))
        trials = [study.ask() for _ in range(3)]
        return {trials[i].number: suggest(trials[i], space) for i in order}

    first, second = draws([0, 1, 2]), draws([2, 0, 1])
    assert first == second and len({json.dumps(v) for v in first.values()}) == 3
    assert draws([0, 1, 2], seed=8) != first


def test_a_trial_created_beyond_the_budget_is_surplus(tmp_path):
    """Two workers asking at the same moment can create one trial too many: only the first
    n_trials trials that are not FAIL hold the budget (a failed one frees its place)."""
    import optuna
    from optuna.trial import TrialState

    from topograph.studies.tuning import _within_budget

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    t0, t1, t2 = study.ask(), study.ask(), study.ask()
    assert [_within_budget(study, t, 2) for t in (t0, t1, t2)] == [True, True, False]
    study.tell(t0, state=TrialState.FAIL)
    assert _within_budget(study, t2, 2)


def test_a_trial_whose_worker_died_before_naming_itself_goes_back_to_the_queue(tmp_path, monkeypatch):
    """A worker killed between study.ask() and writing its pid leaves a RUNNING trial with no
    owner and no heartbeat: once older than the grace it waits for the next worker (the
    SIGKILL test hung on such a trial); a trial its live worker has named stays running."""
    import optuna
    from optuna.trial import TrialState

    from topograph.studies import tuning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = tuning._storage(f"sqlite:///{tmp_path / 'o.sqlite3'}")
    study = optuna.create_study(study_name="s", storage=rdb)
    orphan, owned = study.ask(), study.ask()
    owned.set_user_attr("host", tuning.socket.gethostname())
    owned.set_user_attr("pid", os.getpid())
    assert tuning._account_for_dead_trials(study, rdb) == []  # younger than the grace
    monkeypatch.setattr(tuning, "HEARTBEAT_GRACE_SECONDS", -1.0)
    assert tuning._account_for_dead_trials(study, rdb) == [orphan.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {orphan.number: TrialState.WAITING, owned.number: TrialState.RUNNING}
    assert study.get_trials()[orphan.number].user_attrs["interrupted"] == 1


@pytest.mark.parametrize("url, words", [
    ("not a url", "is not a SQLAlchemy URL"),
    ("nosuchdialect://host/db", "cannot be used"),
    ("mysql+pymysql://user:secret@127.0.0.1:1/db", "driver is not installed"),
])
def test_unusable_storage_is_one_line(url, words, capsys, tmp_path):
    assert main(["study", "quickstart", "--quick", "--storage", url, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "secret" not in err
