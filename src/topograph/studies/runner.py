"""Run a study: tune → train every arm × seed → analyses → ``report.html`` + CSV tables.

Everything is resumable: runs are ordinary run directories (a finished run is never redone, an
interrupted one resumes from its checkpoint), tuning resumes from its Optuna storage, and the
report is rebuilt from what is on disk.  Layout of ``OUT/NAME/MODE``::
    study.toml          the study config as run (copy of the shipped file)
    optuna.sqlite3      tuning storage (unless --storage names another)
    tuning/ARM/...      one run directory per tried parameter set
    runs/ARM/HASH/seed-S  the final runs (HASH = hash of the arm's resolved config)
    barriers/           each path search of a ``solutions`` analysis, resumable (topograph.paths)
    tables/*.csv, report.html, results.json
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topograph.errors import UsageError
from topograph.io import atomic_write_json, atomic_write_text
from topograph.runs.config import RunConfig, result_view
from topograph.runs.progress import progress_bar
from topograph.runs.store import Run
from topograph.runs.trainer import Session
from topograph.studies.analyses import build_report
from topograph.studies.context import StudyContext, fb_cost
from topograph.studies.spec import Arm, config_dir, load_study, read_study_toml, study_names
from topograph.studies.tuning import apply_params, default_storage, tune_arm

DEFAULT_OUT = Path("topograph-studies")
#: what studies need beyond the main install (the ``studies`` extra): tuning and report figures
STUDY_EXTRAS = ("optuna", "plotly")


def require_study_extras() -> None:
    """One :class:`UsageError` line naming what to install when the ``studies`` extra is missing."""
    missing = []
    for module in STUDY_EXTRAS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UsageError(f"studies need {' and '.join(missing)}, which the main install leaves out: "
                         "pip install 'topograph[studies]' (in a clone: pip install -e '.[studies]')")


def config_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class StudyResult:
    study_dir: Path
    report: Path
    tables: list[Path]
    seconds: float


def study_dir_for(name: str, out: str | Path | None, quick: bool) -> Path:
    return Path(out if out is not None else DEFAULT_OUT) / name / ("quick" if quick else "default")


def _run_sessions(arm: Arm, cfg_doc: dict[str, Any], study_dir: Path, bar) -> list[Run]:
    doc = copy.deepcopy(cfg_doc)
    doc.setdefault("run", {})["name"] = arm.name
    doc["run"]["seeds"] = list(arm.seeds)
    cfg = RunConfig.from_dict(doc, source=f"study arm {arm.name}")

    key = config_hash(result_view(cfg.to_dict()))
    runs = []
    for seed in arm.seeds:
        run_dir = study_dir / "runs" / arm.name / key / f"seed-{seed}"
        runs.append(Session(cfg, seed, run_dir, progress=bar, task_label=f"{arm.name} seed {seed}").run())
    return runs


def _matched_config(arm: Arm, ctx: StudyContext) -> dict[str, Any]:
    """Give ``arm`` the mean F/B budget of ``arm.match['arm']`` (as a step limit)."""
    other = arm.match["arm"]
    costs = [fb_cost(r.summary) for r in ctx.runs[other]]
    budget = sum(costs) / len(costs)
    doc = copy.deepcopy(arm.config)
    doc.setdefault("run", {})
    doc["run"]["max_steps"] = max(1, int(round(budget)))  # one F/B per step for plain optimizers
    doc["run"]["epochs"] = int(arm.match.get("cap_epochs", 1000))
    ctx.notes.append(f"arm {arm.name}: given the mean compute of {other} = {budget:.0f} F/B "
                     f"(steps capped at {doc['run']['epochs']} epochs)")
    return doc


def _best_cell_config(arm: Arm, cfg: dict[str, Any], ctx: StudyContext) -> dict[str, Any]:
    """``cfg`` with the values of the best cell of sweep ``arm.best_of['sweep']`` (highest mean
    ``metric`` over its seeds; lowest for a ``*_loss`` metric)."""
    sweep, metric = arm.best_of["sweep"], arm.best_of.get("metric", "test_acc")
    cells = [a for a in ctx.spec.arms if a.sweep == sweep and ctx.runs.get(a.name)]
    sign = -1.0 if metric.endswith("loss") else 1.0

    def score(a: Arm) -> float:
        v = [x for x in ctx.values(a.name, metric) if math.isfinite(x)]
        return sign * sum(v) / len(v) if v else -math.inf

    if not cells:
        raise UsageError(f"arm {arm.name}: best_of.sweep {sweep!r} has no finished runs to choose from")
    best = max(cells, key=score)
    ctx.notes.append(f"arm {arm.name}: the best cell of sweep {sweep} by mean {metric} is {best.label} "
                     f"({sign * score(best):.4g}); run here with this arm's budget")
    return apply_params(cfg, best.sweep_values)


def run_study(name_or_path: str | Path, *, quick: bool = False, out: str | Path | None = None,
              storage: str | None = None, progress: bool = True, report: bool = True) -> StudyResult:
    """Run (or resume) a study and write its report; see :mod:`topograph.studies`."""

    t0 = time.perf_counter()
    spec = load_study(name_or_path, quick=quick)
    require_study_extras()
    study_dir = study_dir_for(spec.name, out, quick)
    study_dir.mkdir(parents=True, exist_ok=True)
    raw_text = (Path(name_or_path).read_text(encoding="utf-8") if str(name_or_path).endswith(".toml")
                else _shipped_text(spec.name))
    atomic_write_text(study_dir / "study.toml", raw_text)
    url = storage or default_storage(study_dir)
    ctx = StudyContext(spec=spec, study_dir=study_dir, progress=progress)
    ordered = ([a for a in spec.arms if not a.match and not a.tune_from and not a.best_of]
               + [a for a in spec.arms if (a.match or a.tune_from) and not a.best_of]
               + [a for a in spec.arms if a.best_of])
    for arm in ordered:
        cfg = arm.config
        if arm.tune and spec.budget.trials:
            tcfg = copy.deepcopy(cfg)
            tcfg.setdefault("data", {})["val_size"] = spec.budget.tune_val_size
            result = tune_arm(arm=arm.name, study_name=f"{spec.name}-v{spec.version}-{spec.mode}-{arm.name}",
                              base_config=tcfg, space=arm.tune, trials_dir=study_dir / "tuning" / arm.name,
                              storage=url, n_trials=spec.budget.trials, epochs=spec.budget.tune_epochs,
                              seed=1000 + arm.seeds[0], startup_trials=spec.budget.startup_trials)
            ctx.tuning[arm.name] = result
            cfg = apply_params(cfg, result.best_params)
        elif arm.tune_from and arm.tune_from in ctx.tuning:
            best = ctx.tuning[arm.tune_from].best_params
            scaled = {k: v * arm.tune_scale[k] if k in arm.tune_scale else v for k, v in best.items()}
            cfg = apply_params(cfg, scaled)
            how = (f" scaled by {arm.tune_scale}: {scaled}" if arm.tune_scale else "")
            kept = (f"; fixed for this arm (overriding the tuned values): {arm.fixed}" if arm.fixed else "")
            ctx.notes.append(f"arm {arm.name}: uses the setting tuned for {arm.tune_from}: {best}{how}{kept}")
        if arm.fixed:
            cfg = apply_params(cfg, arm.fixed)
        if arm.best_of:
            cfg = _best_cell_config(arm, cfg, ctx)
        if arm.match:
            cfg = _matched_config(Arm(**{**arm.__dict__, "config": cfg}), ctx)
        ctx.configs[arm.name] = cfg
        with progress_bar(progress) as bar:
            ctx.runs[arm.name] = _run_sessions(arm, cfg, study_dir, bar)
    seconds = time.perf_counter() - t0
    rep = build_report(ctx, seconds=seconds) if report else None
    tables_dir = study_dir / "tables"
    path = study_dir / "report.html"
    if rep is not None:
        rep.write(path, tables_dir=tables_dir)
    atomic_write_json(study_dir / "results.json", {
        "study": spec.name, "version": spec.version, "mode": spec.mode,
        "arms": {a: {"seeds": [r.seed for r in rs], "test_acc": ctx.values(a, "test_acc"),
                     "test_loss": ctx.values(a, "test_loss"), "fb_cost": ctx.values(a, "fb_cost"),
                     "seconds": ctx.values(a, "seconds")} for a, rs in ctx.runs.items()},
        "tuning": {a: {"best_params": t.best_params, "best_val_acc": t.best_value,
                       "complete": t.n_complete, "pruned": t.n_pruned, "failed": t.n_failed,
                       "interrupted": t.n_interrupted} for a, t in ctx.tuning.items()},
        "host": platform.node(), "seconds_this_invocation": seconds})
    return StudyResult(study_dir=study_dir, report=path,
                       tables=sorted(tables_dir.glob("*.csv")) if tables_dir.exists() else [],
                       seconds=time.perf_counter() - t0)


def _shipped_text(name: str) -> str:
    return (config_dir() / f"{name}.toml").read_text(encoding="utf-8")


def list_studies() -> list[dict[str, Any]]:
    """Name, title, paper and estimated cost (minutes on 2 CPU cores) of every shipped study."""

    out = []
    for n in study_names():
        raw, _ = read_study_toml(n)
        head = raw.get("study", {})
        cost = head.get("cost_minutes", {})
        out.append({"name": n, "title": head.get("title", n), "paper": head.get("paper", ""),
                    "default_minutes": cost.get("default", math.nan),
                    "quick_minutes": cost.get("quick", math.nan)})
    return out


__all__ = ["DEFAULT_OUT", "StudyContext", "StudyResult", "config_hash", "fb_cost", "list_studies",
           "run_study", "study_dir_for"]
