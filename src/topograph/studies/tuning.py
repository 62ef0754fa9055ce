"""Fair hyperparameter tuning with Optuna: the same trial budget for every optimizer.

Each tuned arm of a study gets its own Optuna study ``<study>-v<version>-<mode>-<arm>`` in one
RDB storage — a SQLite file in the study directory by default, or any SQLAlchemy URL
(``postgresql://...``) so that several processes or machines share the trials of one study
(``load_if_exists=True``; ``MaxTrialsCallback`` stops every worker once the budget of finished
trials is spent).  The sampler is TPE (Bergstra et al. 2011), seeded; pruning is Optuna's
``MedianPruner`` on the per-epoch **validation** accuracy (never the test set).

A trial is an ordinary run (:mod:`topograph.runs`) in ``tuning/<arm>/<hash of params>``, so a
trial killed half way resumes from its checkpoint when its parameters are tried again: on
restart, trials left RUNNING by a dead process on this host are marked FAIL and re-enqueued
with the same parameters.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topograph.errors import UsageError

#: the keys a search-space entry may have
SPACE_KEYS = ("low", "high", "log", "choices", "step")


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
    parameters are delivered (and reported) first.  Epoch 0 (the initial point) is skipped.
    """

    def __init__(self, trial) -> None:
        self.trial = trial
        self.reported = 0

    def __call__(self, row: Mapping[str, Any]) -> None:
        import optuna

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


def _mark_dead_trials(study) -> None:
    """Trials RUNNING from a process of this host that no longer exists → FAIL + re-enqueue."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") != host:
            continue
        pid = int(t.user_attrs.get("pid", -1))
        if pid == os.getpid() or _alive(pid):
            continue
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, skip_if_exists=False)


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


def tune_arm(*, arm: str, study_name: str, base_config: Mapping[str, Any],
             space: Mapping[str, Mapping[str, Any]], trials_dir: str | Path, storage: str,
             n_trials: int, epochs: int, seed: int = 0, progress: bool = False) -> TuningResult:
    """Tune one arm: ``n_trials`` finished (complete or pruned) trials in ``storage``.

    Every trial trains ``base_config`` with the suggested ``space`` values for ``epochs``
    epochs (seed ``seed``) on the training set minus a validation split (``data.val_size``
    must be > 0) and returns the validation accuracy of its last epoch.  Resumes: trials
    already in the storage count toward the budget.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from topograph.runs.config import RunConfig
    from topograph.runs.trainer import Session

    if not base_config.get("data", {}).get("val_size"):
        raise UsageError(f"arm {arm}: tuning needs data.val_size > 0 (tuning never looks at the test set)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, n_trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
                                direction="maximize", load_if_exists=True)
    _mark_dead_trials(study)
    trials_dir = Path(trials_dir)
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)

    def objective(trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        params = suggest(trial, space)
        doc = apply_params(base_config, params)
        doc.setdefault("run", {})
        doc["run"].update({"epochs": int(epochs), "seeds": [int(seed)], "name": params_hash(params)})
        doc.setdefault("snapshots", {})["every_epochs"] = 0
        cfg = RunConfig.from_dict(doc, source=f"study arm {arm} (tuning)")
        run_dir = trials_dir / params_hash(params) / f"seed-{seed}"
        trial.set_user_attr("run_dir", str(run_dir))
        run = Session(cfg, seed, run_dir, on_epoch=_PruningCallback(trial)).run()
        return _finite(run.metrics()[-1].get("val_acc"))

    done = len(study.get_trials(deepcopy=False, states=finished_states))
    if done < n_trials:
        study.optimize(objective, n_trials=n_trials - done, catch=(FloatingPointError,),
                       callbacks=[MaxTrialsCallback(n_trials, states=finished_states)],
                       show_progress_bar=False)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UsageError(f"arm {arm}: no tuning trial completed (all {len(trials)} pruned or failed)")
    best = max(complete, key=lambda t: (t.value, -t.number))
    rows = [{"number": t.number, "state": t.state.name, "value": t.value, **t.params} for t in trials]
    return TuningResult(
        arm=arm, study_name=study_name, best_params=dict(best.params), best_value=float(best.value),
        n_complete=len(complete), n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials), trials=rows)


__all__ = ["TuningResult", "apply_params", "check_space", "default_storage", "params_hash", "suggest",
           "tune_arm"]
