"""Fair hyperparameter tuning with Optuna: the same trial budget for every optimizer.

Each tuned arm of a study gets its own Optuna study ``<study>-v<version>-<mode>-<arm>`` in one
RDB storage — a SQLite file in the study directory by default, or any SQLAlchemy URL
(``postgresql://...``) so that several processes or machines share the trials of one study.
The sampler is TPE (Bergstra et al. 2011), seeded, after start-up trials drawn at random with a
seed per trial number; pruning is Optuna's ``MedianPruner`` on the per-epoch **validation**
accuracy (never the test set).

A trial is an ordinary run (:mod:`topograph.runs`) in ``tuning/<arm>/<hash of params>``.
Workers sharing a study (:func:`tune_arm`) ask for trials while the budget has room and wait
while its rest runs elsewhere, so the study ends with exactly its budget of finished trials.
A running trial records a heartbeat; when its worker dies (its process is gone from this host,
or its heartbeat is older than ``HEARTBEAT_GRACE_SECONDS``) the trial goes back to WAITING with
the same number and parameters, counted as ``interrupted``, and the next worker runs it — its
run directory resumes from its checkpoint where the file system is shared.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from topograph.errors import UsageError
from topograph.runs.config import RunConfig
from topograph.runs.trainer import Session

#: the keys a search-space entry may have
SPACE_KEYS = ("low", "high", "log", "choices", "step")
#: a running trial records a heartbeat in the storage this often (seconds) …
HEARTBEAT_SECONDS = 20
#: … and counts as interrupted (its worker dead) when the last one is older than this
HEARTBEAT_GRACE_SECONDS = 120
#: a worker waiting for trials running elsewhere looks again after this many seconds
POLL_SECONDS = 2.0


@dataclass
class TuningResult:
    """The outcome of tuning one arm."""

    arm: str
    study_name: str
    best_params: dict[str, Any]
    best_value: float
    n_complete: int
    n_pruned: int
    n_failed: int
    n_interrupted: int = 0
    trials: list[dict[str, Any]] = field(default_factory=list)


def default_storage(study_dir: str | Path) -> str:
    """The SQLite URL of ``study_dir/optuna.sqlite3``."""
    return "sqlite:///" + str((Path(study_dir) / "optuna.sqlite3").resolve())


def check_space(space: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Validate a search space ``{"optimizer.lr": {"low":..,"high":..,"log":true}, ...}``."""
    out = {}
    for key, spec in space.items():
        if not isinstance(spec, Mapping):
            raise UsageError(f"{where}.{key} must be a table like {{low = 1e-4, high = 1, log = true}} "
                             f"or {{choices = [...]}}")
        bad = [k for k in spec if k not in SPACE_KEYS]
        if bad:
            raise UsageError(f"{where}.{key}: unknown key {bad[0]!r}; allowed: {', '.join(SPACE_KEYS)}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise UsageError(f"{where}.{key}.choices must be a non-empty list")
        elif not ("low" in spec and "high" in spec) or not spec["low"] < spec["high"]:
            raise UsageError(f"{where}.{key} needs numbers low < high (or choices = [...])")
        if "." not in key:
            raise UsageError(f"{where}.{key}: a tuned key is TABLE.KEY, e.g. optimizer.lr")
        out[key] = dict(spec)
    return out


def suggest(trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one point of ``space`` from an Optuna trial."""
    params = {}
    for key, spec in space.items():
        if "choices" in spec:
            params[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            params[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log", False)),
                                            step=int(spec.get("step", 1)))
        else:
            params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                              log=bool(spec.get("log", False)))
    return params


def apply_params(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a run-config dict with dotted ``params`` set (``optimizer.base.lr`` works too)."""
    out = copy.deepcopy(dict(config))
    for key, value in params.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def params_hash(params: Mapping[str, Any]) -> str:
    """A short stable name for a parameter set (a folder name)."""
    text = json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class _PruningCallback:
    """The trainer's ``on_epoch`` hook for one trial: reports the validation accuracy of each
    epoch to Optuna and raises ``TrialPruned`` when the pruner says so.

    The trainer calls it after the epoch's metrics row is written and checkpointed, so a
    pruned run is resumable; rows of an earlier, interrupted or finished run of the same
    parameters are delivered first, and those already reported (``reported``: the last epoch
    the trial holds, for a trial resumed after an interruption) are not reported again.
    Epoch 0 (the initial point) is skipped.
    """

    def __init__(self, trial, reported: int = 0) -> None:
        self.trial = trial
        self.reported = int(reported)

    def __call__(self, row: Mapping[str, Any]) -> None:

        epoch = int(row["epoch"])
        if epoch <= self.reported or epoch == 0:
            return
        self.trial.report(_finite(row.get("val_acc")), epoch)
        self.reported = epoch
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


def _finite(v: Any) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


# ---------------------------------------------------------------------- workers sharing a study
def _storage(url: str):
    """Optuna's RDB storage for ``url`` with heartbeats (recorded by :func:`_heartbeat`).

    Workers started at once on an empty database race to create its tables (Optuna creates
    them on first use; the loser's ``CREATE TABLE`` fails): a failed creation is retried a few
    times, by which time the tables exist.  A URL that cannot be used gives one line."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise UsageError(f"--storage {url!r} is not a SQLAlchemy URL (e.g. sqlite:///optuna.db or "
                         "postgresql+psycopg://user:password@host/database)") from None
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=HEARTBEAT_GRACE_SECONDS)
        except ImportError as err:
            raise UsageError(f"storage {shown}: its database driver is not installed ({err}); install it, "
                             "e.g. pip install 'psycopg[binary]' for postgresql+psycopg://") from None
        except sqlalchemy.exc.SQLAlchemyError as err:
            text = str(err.orig if getattr(err, "orig", None) is not None else err).strip()
            racing = any(w in text.lower() for w in ("already exists", "duplicate", "locked"))
            if attempt == 5 or not racing:
                first = text.splitlines()[0] if text else type(err).__name__
                raise UsageError(f"storage {shown}: cannot be used ({first}); "
                                 "check that the database server runs and the URL is right") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _heartbeat(storage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat now and every ``HEARTBEAT_SECONDS`` while the body runs (a
    thread that is stopped and joined on the way out, whatever happens in the body)."""
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):  # a missed beat only makes the trial look older
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"topograph-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _trial_sampler(seed: int, startup: int):
    """TPE (Bergstra et al. 2011, seeded) whose first ``startup`` trials are random draws seeded by
    ``(seed, trial number)``: the start-up trials are the same whichever worker draws them and
    in whatever order, so several workers sharing a study try what one worker would try.  (TPE's
    later proposals depend on which trials have finished when they are drawn.)"""

    class StartupByNumber(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
            self.draws: dict[int, optuna.samplers.RandomSampler] = {}

        def infer_relative_search_space(self, study, trial):
            return {} if trial.number < startup else self.tpe.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return {} if trial.number < startup else self.tpe.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, name, distribution):
            if trial.number >= startup:
                return self.tpe.sample_independent(study, trial, name, distribution)
            if trial.number not in self.draws:  # one generator per trial: its parameters in turn
                state = np.random.SeedSequence((int(seed), int(trial.number))).generate_state(1)[0]
                self.draws[trial.number] = optuna.samplers.RandomSampler(seed=int(state))
            return self.draws[trial.number].sample_independent(study, trial, name, distribution)

        def before_trial(self, study, trial) -> None:
            self.tpe.before_trial(study, trial)

        def after_trial(self, study, trial, state, values) -> None:
            self.draws.pop(trial.number, None)
            self.tpe.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.tpe.reseed_rng()

    return StartupByNumber()


def _account_for_dead_trials(study, storage) -> list[int]:
    """Trials RUNNING in a worker that died → WAITING again, with the same number and parameters,
    and ``interrupted`` (a user attribute) counted up; the next worker to ask runs them (their run
    directory, named by the parameters, resumes from its checkpoint where the file system is
    shared).  A worker is dead when it ran on this host and its process is gone, or when the
    trial's heartbeat is older than ``HEARTBEAT_GRACE_SECONDS`` (any host), or when a trial older
    than that names no worker at all (its worker died between asking for it and naming itself).
    Returns the numbers."""

    host = socket.gethostname()
    stale = set(storage._get_stale_trial_ids(study._study_id))
    now = datetime.datetime.now()  # optuna's own clock for datetime_start
    revived = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = int(t.user_attrs.get("pid", -1))
        gone = t.user_attrs.get("host") == host and pid != os.getpid() and not _alive(pid)
        # a worker killed between asking for the trial and naming itself left neither a pid nor a
        # heartbeat: the trial is nobody's once it is older than the heartbeat grace
        orphan = "pid" not in t.user_attrs and t.datetime_start is not None \
            and (now - t.datetime_start).total_seconds() > HEARTBEAT_GRACE_SECONDS
        if not (gone or orphan or t._trial_id in stale):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "interrupted", int(t.user_attrs.get("interrupted", 0)) + 1)
            storage.set_trial_state_values(t._trial_id, state=TrialState.WAITING)
        except Exception:  # noqa: BLE001 - another worker got there first (finished or re-claimed it)
            continue
        revived.append(t.number)
    return revived


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _within_budget(study, trial, n_trials: int) -> bool:
    """Whether ``trial`` is one of the first ``n_trials`` trials that hold the budget (every
    state but FAIL); a trial two workers created at once beyond the budget is not."""

    holding = sorted(t.number for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL)
    return trial.number in holding[:n_trials]


def _run_trial(study, rdb, trial, objective) -> None:
    """Run one asked trial and tell the study how it ended: complete, pruned, failed (a
    non-finite result, or an error, which is raised again), or — stopped by the user — waiting
    for the next worker."""
    try:
        with _heartbeat(rdb, trial._trial_id):
            value = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    except FloatingPointError as err:
        trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    except KeyboardInterrupt:  # stopped by the user: the trial waits for the next worker
        rdb.set_trial_user_attr(trial._trial_id, "interrupted",
                                int(rdb.get_trial(trial._trial_id).user_attrs.get("interrupted", 0)) + 1)
        rdb.set_trial_state_values(trial._trial_id, state=TrialState.WAITING)
        raise
    except BaseException as err:
        with contextlib.suppress(Exception):
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}"[:500])
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    else:  # (skip_if_finished: a worker whose heartbeat stalled may find its trial run by another)
        study.tell(trial, value, skip_if_finished=True)


def tune_arm(*, arm: str, study_name: str, base_config: Mapping[str, Any],
             space: Mapping[str, Mapping[str, Any]], trials_dir: str | Path, storage: str,
             n_trials: int, epochs: int, seed: int = 0, startup_trials: int | None = None,
             progress: bool = False) -> TuningResult:
    """Tune one arm: ``n_trials`` finished (complete or pruned) trials in ``storage``.

    Every trial trains ``base_config`` with the suggested ``space`` values for ``epochs``
    epochs (seed ``seed``) on the training set minus a validation split (``data.val_size``
    must be > 0) and returns the validation accuracy of its last epoch.  The first
    ``startup_trials`` (default ``max(1, min(10, n_trials // 3))``) are random draws, then TPE.

    Several workers (processes, machines) may run this at once on one storage: each takes the
    next trial while the budget has room, waits while the rest of it is running elsewhere, and
    stops once ``n_trials`` trials have finished.  A trial of a dead worker (see
    :func:`_account_for_dead_trials`) is run again by the others, counted as ``interrupted``, not
    failed.  Resumes: trials already in the storage count toward the budget.
    """


    if not base_config.get("data", {}).get("val_size"):
        raise UsageError(f"arm {arm}: tuning needs data.val_size > 0 (tuning never looks at the test set)")
    startup = max(1, min(10, n_trials // 3)) if startup_trials is None else int(startup_trials)
    if startup < 0:
        raise UsageError(f"arm {arm}: startup_trials must be a non-negative integer, got {startup_trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = _storage(storage)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(study_name=study_name, storage=rdb, sampler=_trial_sampler(seed, startup),
                                pruner=pruner, direction="maximize", load_if_exists=True)
    trials_dir = Path(trials_dir)

    def objective(trial) -> float:
        params = suggest(trial, space)
        doc = apply_params(base_config, params)
        doc.setdefault("run", {})
        doc["run"].update({"epochs": int(epochs), "seeds": [int(seed)], "name": params_hash(params)})
        doc.setdefault("snapshots", {})["every_epochs"] = 0
        cfg = RunConfig.from_dict(doc, source=f"study arm {arm} (tuning)")
        run_dir = trials_dir / params_hash(params) / f"seed-{seed}"
        trial.set_user_attr("run_dir", str(run_dir))
        reported = max(rdb.get_trial(trial._trial_id).intermediate_values, default=0)
        run = Session(cfg, seed, run_dir, on_epoch=_PruningCallback(trial, reported)).run()
        return _finite(run.metrics()[-1].get("val_acc"))

    while True:
        _account_for_dead_trials(study, rdb)
        trials = study.get_trials(deepcopy=False)
        count = {state: sum(t.state == state for t in trials) for state in TrialState}
        finished = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
        failed = sum(t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials)
        if finished >= n_trials or failed >= n_trials:  # done, or as many errors as the budget: stop
            break
        if not count[TrialState.WAITING] and finished + count[TrialState.RUNNING] >= n_trials:
            time.sleep(POLL_SECONDS)  # the rest of the budget is running in other workers
            continue
        with warnings.catch_warnings():  # heartbeats are recorded by _heartbeat, not by optimize()
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())  # whose trial it is, at once (see
        trial.set_user_attr("pid", os.getpid())            # _account_for_dead_trials)
        if not _within_budget(study, trial, n_trials):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            continue
        _run_trial(study, rdb, trial, objective)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UsageError(f"arm {arm}: no tuning trial completed (all {len(trials)} pruned or failed)")
    best = max(complete, key=lambda t: (t.value, -t.number))
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "interrupted": int(t.user_attrs.get("interrupted", 0)), **t.params} for t in trials]
    return TuningResult(
        arm=arm, study_name=study_name, best_params=dict(best.params), best_value=float(best.value),
        n_complete=len(complete), n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        n_interrupted=sum(bool(t.user_attrs.get("interrupted")) for t in trials), trials=rows)


__all__ = ["TuningResult", "apply_params", "check_space", "default_storage", "params_hash", "suggest",
           "tune_arm"]
