"""A study: a versioned TOML config shipped in ``topograph/studies/configs/NAME.toml``.

Schema (every table is documented in ``docs/studies.md``)::
    [study]      name, version, title, description, paper, differences = [...],
                 cost_minutes = {default = 90, quick = 2}     # estimated on 2 CPU cores
    [base]       a run config (topograph.runs tables) shared by every arm
    [[arms]]     name, label, optimizer = {...}, set = {run config overrides}, tune_from = "arm",
                 tune = {"optimizer.lr" = {low, high, log}}, paper = {test_acc = 0.8949, ...},
                 match = {arm = "other", cap_epochs = 200},   # same F/B budget as another arm
                 tune_scale = {"optimizer.lr" = 0.5},         # with tune_from: scale the reused values
                 fixed = {"optimizer.explore_every" = 1},     # set after tuned/reused values
                 best_of = {sweep = "grid", metric = "test_acc"}  # the sweep's best cell, run as this arm
    [[sweeps]]   name, optimizer = {...}, set = {...}, grid = {"optimizer.lr" = [..], ...}
    [[comparisons]]  a, b, metric = "test_acc", higher_is_better = true, paper = "text"
    [[analyses]]     kind = "..." and its options
    [budgets.default], [budgets.quick]
                 seeds, trials, startup_trials, tune_epochs, tune_val_size, sweep_seeds, set = {...},
                 arm_set = {ARM = {...}},                 # per-mode config overrides of one arm
                 arm_seeds = {ARM = [0, 1, ...]},         # per-mode seeds of one arm (else seeds)
                 analyses = {kind = {options}}            # per-mode analysis options

A budget's ``set`` is deep-merged into ``base``; its ``analyses`` options into the analyses.
``{seeds}`` in the description becomes the mode's number of seeds (the report's intro).
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from topograph.errors import UsageError
from topograph.runs.config import RunConfig
from topograph.studies.tuning import apply_params, check_space

MODES = ("default", "quick")


def deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``a`` updated recursively with ``b`` (copies; tables merge, other values replace)."""
    out = copy.deepcopy(dict(a))
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass
class Arm:
    """One optimizer setting of a study: trained with every seed, maybe tuned first."""

    name: str
    label: str
    config: dict[str, Any]                   # the full run-config dict (base + overrides)
    tune: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper: dict[str, float] = field(default_factory=dict)
    match: dict[str, Any] = field(default_factory=dict)
    tune_from: str = ""                      # reuse the tuned setting of another arm
    tune_scale: dict[str, float] = field(default_factory=dict)  # multiply reused tuned values
    best_of: dict[str, Any] = field(default_factory=dict)       # {sweep, metric}: the best cell's values
    fixed: dict[str, Any] = field(default_factory=dict)         # dotted keys set after tuned values
    seeds: list[int] = field(default_factory=list)
    sweep: str = ""                          # name of the sweep that generated it ("" = none)
    sweep_values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    seeds: list[int]
    trials: int
    tune_epochs: int
    tune_val_size: int | float
    sweep_seeds: list[int]
    analyses: dict[str, dict[str, Any]]
    #: random trials before TPE (None: max(1, min(10, trials // 3)))
    startup_trials: int | None = None


@dataclass
class StudySpec:
    """A parsed study config in one mode (``default`` or ``quick``)."""

    name: str
    version: int
    title: str
    description: str
    paper: str
    differences: list[str]
    cost_minutes: dict[str, float]
    mode: str
    budget: Budget
    arms: list[Arm]
    comparisons: list[dict[str, Any]]
    analyses: list[dict[str, Any]]
    raw: dict[str, Any]
    source: str

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise UsageError(f"{self.source}: no arm named {name!r}; arms: {', '.join(a.name for a in self.arms)}")


def spec_arm_tuned(arms: list[Arm], name: str) -> bool:
    return any(a.name == name and a.tune for a in arms)


def config_dir():
    return resources.files("topograph.studies") / "configs"


def study_names() -> list[str]:
    """The names of the shipped studies."""
    return sorted(p.name[:-5] for p in config_dir().iterdir() if p.name.endswith(".toml"))


def read_study_toml(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """The raw TOML of a shipped study (by name) or of a study file (a path ending in .toml)."""
    text_path = str(name_or_path)
    if text_path.endswith(".toml"):
        path = Path(text_path)
        if not path.exists():
            raise UsageError(f"{path}: no such study file")
        text, source = path.read_text(encoding="utf-8"), path.name
    else:
        names = study_names()
        if text_path not in names:
            raise UsageError(f"unknown study {text_path!r}; known: {', '.join(names)} (or a path to a .toml)")
        text, source = (config_dir() / f"{text_path}.toml").read_text(encoding="utf-8"), f"{text_path}.toml"
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{source}: not valid TOML: {err}") from None


def _require(doc: Mapping, key: str, source: str, kind: type | tuple) -> Any:
    if key not in doc:
        raise UsageError(f"{source}: missing key {key!r}")
    if not isinstance(doc[key], kind):
        raise UsageError(f"{source}: {key} has the wrong type ({type(doc[key]).__name__})")
    return doc[key]


def _startup_trials(budget: Mapping[str, Any], where: str) -> int | None:
    value = budget.get("startup_trials")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{where}.startup_trials = {value!r}: must be a non-negative integer "
                         "(random trials before TPE)")
    return value


def load_study(name_or_path: str | Path, *, quick: bool = False) -> StudySpec:
    """Parse and validate a study in the chosen mode (budgets applied, sweeps expanded)."""
    raw, source = read_study_toml(name_or_path)
    mode = "quick" if quick else "default"
    allowed = {"study", "base", "arms", "sweeps", "comparisons", "analyses", "budgets"}
    for key in raw:
        if key not in allowed:
            raise UsageError(f"{source}: unknown table [{key}]; allowed: {', '.join(sorted(allowed))}")
    head = _require(raw, "study", source, dict)
    budget, b = _budget(raw, mode, source)
    base = deep_merge(raw.get("base", {}), b.get("set", {}))
    arm_seeds = b.get("arm_seeds", {})
    if not isinstance(arm_seeds, dict) or not all(
            isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
            for v in arm_seeds.values()):
        raise UsageError(f"{source}: budgets.{mode}.arm_seeds must be a table of seed lists, e.g. "
                         "{ae-sgd = [0, 1, 2, 3]}")
    arms = [_arm(a, f"{source}: arms[{i}]", base, b, budget, arm_seeds) for i, a in enumerate(raw.get("arms", []))]
    for i, sweep in enumerate(raw.get("sweeps", [])):
        arms += _sweep_arms(sweep, f"{source}: sweeps[{i}]", base, b, budget)
    names = [a.name for a in arms]
    unknown = [k for k in arm_seeds if k not in names]
    if unknown:
        raise UsageError(f"{source}: budgets.{mode}.arm_seeds names no arm {unknown[0]!r}; arms: {', '.join(names)}")
    _check_arms(arms, source)
    comparisons = list(raw.get("comparisons", []))
    for i, c in enumerate(comparisons):
        for k in ("a", "b"):
            if c.get(k) not in names:
                raise UsageError(f"{source}: comparisons[{i}].{k} must name an arm, got {c.get(k)!r}")
    analyses = []
    for i, an in enumerate(raw.get("analyses", [])):
        if "kind" not in an:
            raise UsageError(f"{source}: analyses[{i}] needs a kind")
        analyses.append(deep_merge(an, budget.analyses.get(an["kind"], {})))
    return StudySpec(
        name=_require(head, "name", f"{source}: [study]", str), version=int(head.get("version", 1)),
        title=head.get("title", head["name"]),
        description=head.get("description", "").replace("{seeds}", str(len(budget.seeds))),
        paper=head.get("paper", ""), differences=list(head.get("differences", [])),
        cost_minutes=dict(head.get("cost_minutes", {})), mode=mode, budget=budget, arms=arms,
        comparisons=comparisons, analyses=analyses, raw=raw, source=source)


def _budget(raw: dict, mode: str, source: str) -> tuple[Budget, dict]:
    """The mode's ``[budgets.MODE]`` table, read into a :class:`Budget` (and the table itself)."""
    budgets = _require(raw, "budgets", source, dict)
    if mode not in budgets:
        raise UsageError(f"{source}: missing [budgets.{mode}]")
    b = budgets[mode]
    budget = Budget(seeds=list(b.get("seeds", [0, 1, 2, 3, 4])), trials=int(b.get("trials", 0)),
                    tune_epochs=int(b.get("tune_epochs", 3)), tune_val_size=b.get("tune_val_size", 0.1),
                    sweep_seeds=list(b.get("sweep_seeds", b.get("seeds", [0]))[:]),
                    analyses=dict(b.get("analyses", {})),
                    startup_trials=_startup_trials(b, f"{source}: budgets.{mode}"))
    return budget, b


def _arm(a: dict, where: str, base: dict, b: dict, budget: Budget, arm_seeds: dict) -> Arm:
    """One ``[[arms]]`` entry: its config (base, its ``set``, its optimizer, the mode's
    ``arm_set``, its ``fixed`` values) and its tuning and matching settings, checked."""
    name = _require(a, "name", where, str)
    cfg = deep_merge(base, a.get("set", {}))
    if "optimizer" in a:
        cfg["optimizer"] = copy.deepcopy(a["optimizer"])
    cfg = deep_merge(cfg, b.get("arm_set", {}).get(name, {}))
    tune = check_space(a.get("tune", {}), f"{where}.tune") if budget.trials else {}
    scale = a.get("tune_scale", {})
    if not isinstance(scale, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in scale.values()):
        raise UsageError(f"{where}.tune_scale must be a table of positive numbers, e.g. {{\"optimizer.lr\" = 0.5}}")
    fixed = a.get("fixed", {})
    if not isinstance(fixed, dict) or not all("." in k for k in fixed):
        raise UsageError(f"{where}.fixed must be a table of dotted keys, e.g. {{\"optimizer.explore_every\" = 1}}")
    if fixed:
        cfg = apply_params(cfg, fixed)
    best_of = a.get("best_of", {})
    if best_of and (not isinstance(best_of, dict) or "sweep" not in best_of):
        raise UsageError(f"{where}.best_of must be a table like {{sweep = \"grid\", metric = \"test_acc\"}}")
    return Arm(name=name, label=a.get("label", name), config=cfg, tune=tune,
               paper=dict(a.get("paper", {})), match=dict(a.get("match", {})),
               tune_from=str(a.get("tune_from", "")) if budget.trials else "",
               tune_scale={k: float(v) for k, v in scale.items()},
               best_of=dict(best_of), fixed=dict(fixed),
               seeds=list(arm_seeds.get(name, a.get("seeds", budget.seeds))))


def _sweep_arms(s: dict, where: str, base: dict, b: dict, budget: Budget) -> list[Arm]:
    """One ``[[sweeps]]`` entry expanded: an arm per point of its grid (the mode's
    ``sweep_grid`` merged in)."""
    sname = _require(s, "name", where, str)
    grid = _require(s, "grid", where, dict)
    grid = deep_merge(grid, b.get("sweep_grid", {}).get(sname, {}))
    cfg0 = deep_merge(base, s.get("set", {}))
    if "optimizer" in s:
        cfg0["optimizer"] = copy.deepcopy(s["optimizer"])
    keys = list(grid)
    arms = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
        aname = f"{sname}-" + "-".join(f"{k.split('.')[-1]}{v}" for k, v in point.items())
        arms.append(Arm(name=aname.replace("/", "_"), label=label, config=apply_params(cfg0, point),
                        seeds=list(s.get("seeds", budget.sweep_seeds)), sweep=sname, sweep_values=point))
    return arms


def _check_arms(arms: list[Arm], source: str) -> None:
    """Unique names, every config valid now (a typo fails before hours of training), and every
    reference to another arm or sweep resolved."""
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise UsageError(f"{source}: arm names must be unique, got {names}")
    for arm in arms:
        doc = copy.deepcopy(arm.config)
        doc.setdefault("run", {})["name"] = arm.name
        RunConfig.from_dict(doc, source=f"{source} arm {arm.name}")
        if arm.tune_from and (arm.tune_from not in names or not spec_arm_tuned(arms, arm.tune_from)):
            raise UsageError(f"{source}: arm {arm.name}: tune_from must name a tuned arm, got {arm.tune_from!r}")
        if arm.match and arm.match.get("arm") not in names:
            raise UsageError(f"{source}: arm {arm.name}: match.arm must name another arm")
        if arm.best_of and not any(a.sweep == arm.best_of["sweep"] for a in arms):
            raise UsageError(f"{source}: arm {arm.name}: best_of.sweep must name a sweep, got {arm.best_of['sweep']!r}")


__all__ = [
    "MODES",
    "Arm",
    "Budget",
    "StudySpec",
    "deep_merge",
    "load_study",
    "read_study_toml",
    "study_names",
]
