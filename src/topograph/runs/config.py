"""The run configuration: a typed, documented schema read from TOML (``tomllib``).

A config has seven tables; every key has a default, so an empty file is a valid run (SGD on
digits).  The reference with every key is ``docs/runs.md``; in short::

    [run]            name, seeds, epochs, max_steps, device, out_dir, checkpoint_every_steps,
                     threads
    [data]           name, root, download, batch_size ("full" or an integer), val_size, seed,
                     limit_train, limit_test, flatten, normalize, permute_pixels, targets;
                     or factory = "pkg.module:fn" with its keyword arguments in [data.kwargs]
    [model]          name (or factory = "pkg.module:fn"), loss, and the model's keyword
                     arguments
    [optimizer]      name and its hyperparameters (topograph.optim.registry)
    [schedule]       name ("none", "step", "cosine", "sgdr"), step_size, gamma, t_max, eta_min,
                     t_0, t_mult
    [early_stopping] patience, min_delta, monitor, stop_on_nonfinite
    [snapshots]      every_epochs, every_steps

Overrides (``--set optimizer.lr=0.01``) are parsed as TOML values (``run.seeds=[0,1]``); a
value that is not TOML is taken as a string (``data.name=digits``); an empty value
(``--set optimizer.momentum=``) removes the key, e.g. one the file sets for another optimizer.
Every mistake — an unknown table or key, a value of the wrong type or range — raises one
:class:`~topograph.errors.UsageError` line that names the file (or ``--set``), the key and what
is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topograph.errors import UsageError
from topograph.models import MODELS, is_model_name
from topograph.optim import registry
from topograph.runs.config_files import apply_overrides, parse_override, read_toml
from topograph.runs.config_values import (
    Bad,
    batch_size,
    best_metrics,
    boolean,
    choice,
    device,
    factory,
    hyperparameter,
    nonneg_int,
    nonneg_number,
    positive_int,
    positive_number,
    run_name,
    seed_list,
    seed_or_false,
    string,
    table,
    val_size,
)


def _rule(default: Any, check: Callable[[Any], Any], doc: str) -> Any:
    factory = (lambda: copy.deepcopy(default)) if isinstance(default, (list, dict)) else None
    meta = {"check": check, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------- sections


@dataclass
class RunSection:
    """``[run]``: what to train, how long, where, and how often to checkpoint."""

    name: str = _rule("run", run_name, "folder name of the run: runs go to OUT/NAME/seed-S")
    seeds: list[int] = _rule([0], seed_list, "one run (directory) per seed")
    epochs: int = _rule(20, positive_int, "maximum number of epochs (one step per epoch for full batch)")
    max_steps: int = _rule(0, nonneg_int, "stop after this many optimizer steps (0 = no limit)")
    device: str = _rule("cpu", device, '"cpu", "cuda", "cuda:N", "mps" or "auto"')
    out_dir: str = _rule("topograph-runs", string, "parent folder of the run directories")
    checkpoint_every_steps: int = _rule(
        0, nonneg_int, "also checkpoint every N steps inside an epoch (0 = at epoch ends only)")
    threads: int = _rule(0, nonneg_int, "torch CPU threads during the run (0 = leave torch's "
                         "setting; 1 is fastest for tiny models)")


@dataclass
class DataSection:
    """``[data]``: the data set (``topograph.data.load_dataset``) and its batching."""

    name: str = _rule("digits", string, '"digits", "mnist", "fashion-mnist", "cifar10"')
    root: str = _rule("", string, "data folder (empty: the loader's default / environment variable)")
    download: bool = _rule(False, boolean, "download (with checksums) when the files are missing")
    batch_size: int | str = _rule(64, batch_size, 'samples per step, or "full" for full batch')
    val_size: int | float = _rule(0, val_size, "validation samples held out of train (count or fraction)")
    seed: int = _rule(0, nonneg_int, "seed of the validation split (shared by all run seeds)")
    limit_train: int = _rule(0, nonneg_int, "use only the first N training samples (0 = all)")
    limit_test: int = _rule(0, nonneg_int, "use only the first N test samples (0 = all)")
    flatten: bool = _rule(False, boolean, "flatten images to vectors")
    normalize: bool = _rule(True, boolean, "standard per-data-set normalisation")
    permute_pixels: int | bool = _rule(
        False, seed_or_false, "a seed: permute the pixels by one fixed permutation and read each "
        "image as a sequence of rows (permuted-pixel MNIST for the lstm model); false = off")
    targets: str = _rule("labels", choice("labels", "inputs"),
                         '"labels", or "inputs": targets are the flattened inputs (autoencoders, '
                         'with model.loss = "mse")')
    factory: str = _rule("", factory, 'your data instead of name: "pkg.module:fn" or "path/to/file.py:fn" '
                         "returning the splits (docs/own-models.md); name, root, download, normalize, "
                         "permute_pixels and targets then do not apply")
    kwargs: dict[str, Any] = _rule({}, table, "keyword arguments of data.factory (a [data.kwargs] table)")

    @property
    def label(self) -> str:
        """The data set in words: its factory or its name."""
        return self.factory or self.name


#: [data] keys of the built-in data sets only: with data.factory they are refused
DATA_NAME_ONLY = ("name", "root", "download", "normalize", "permute_pixels", "targets")


LOSSES = ("cross-entropy", "mse")

#: keyword arguments the built-in models accept (others are passed through unchecked)
MODEL_KWARGS: dict[str, tuple[str, ...]] = {
    "mlp-cifar": ("num_classes",),
    "mlp-fmnist": ("num_classes",),
    "mlp-784-128-64-10": ("num_classes",),
    "mlp-digits": ("num_classes",),
    "cnn-small": ("in_channels", "num_classes", "image_size", "dropout"),
}


@dataclass
class ModelSection:
    """``[model]``: a model by name (``topograph.models``), its loss and keyword arguments."""

    name: str = _rule("mlp-digits", string, "a model name of topograph.models")
    loss: str = _rule("cross-entropy", choice(*LOSSES),
                      '"cross-entropy" (class labels) or "mse" (mean squared error, data.targets = "inputs")')
    factory: str = _rule("", factory, 'your model instead of name: "pkg.module:fn" or "path/to/file.py:fn" '
                         "returning an nn.Module; the other keys are its keyword arguments (docs/own-models.md)")
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model in words: its factory or its name."""
        return self.factory or self.name


@dataclass
class OptimizerSection:
    """``[optimizer]``: an optimizer by registry name and its hyperparameters."""

    name: str = _rule("sgd", string, "a name of topograph.optim.registry")
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleSection:
    """``[schedule]``: the learning-rate schedule (torch's schedulers)."""

    name: str = _rule("none", choice("none", "step", "cosine", "sgdr"),
                      "none | step (StepLR) | cosine (CosineAnnealingLR) | sgdr (warm restarts)")
    step_size: int = _rule(10, positive_int, "step: epochs between decays")
    gamma: float = _rule(0.1, positive_number, "step: decay factor")
    t_max: int = _rule(0, nonneg_int, "cosine: period in epochs (0 = run.epochs)")
    eta_min: float = _rule(0.0, nonneg_number, "cosine, sgdr: the lowest learning rate")
    t_0: int = _rule(10, positive_int, "sgdr: epochs until the first restart")
    t_mult: int = _rule(1, positive_int, "sgdr: each period is t_mult times the previous one")


@dataclass
class EarlyStoppingSection:
    """``[early_stopping]``: stop on a non-finite loss or when the loss stops improving."""

    patience: int = _rule(0, nonneg_int, "stop after this many epochs without improvement (0 = off)")
    min_delta: float = _rule(0.0, nonneg_number, "an improvement must lower the loss by more than this")
    monitor: str = _rule("auto", choice("auto", "train", "val"),
                         "loss watched: auto = val if there is a validation split, else train")
    stop_on_nonfinite: bool = _rule(True, boolean, "stop when the loss becomes NaN or infinite")


@dataclass
class SnapshotsSection:
    """``[snapshots]``: flat parameter vectors saved for trajectory plots (initial point included)."""

    every_epochs: int = _rule(1, nonneg_int, "snapshot every N epochs (0 = off)")
    every_steps: int = _rule(0, nonneg_int, "snapshot every N steps (0 = off)")
    per_epoch: int = _rule(0, nonneg_int, "N snapshots evenly spaced over each epoch's batches, the "
                           "last at its end, whatever the batch size (0 = off)")
    best: list[str] = _rule([], best_metrics, "keep the parameters at the minimum of these per-epoch "
                            "metrics (best/METRIC.pt), e.g. [\"test_loss\"] for early-stopped weights")


SECTIONS: dict[str, type] = {
    "run": RunSection,
    "data": DataSection,
    "model": ModelSection,
    "optimizer": OptimizerSection,
    "schedule": ScheduleSection,
    "early_stopping": EarlyStoppingSection,
    "snapshots": SnapshotsSection,
}

#: keys that do not change a run's results (a run may be resumed with other values)
NON_RESULT_KEYS = frozenset({("run", "out_dir"), ("run", "checkpoint_every_steps"), ("run", "seeds"),
                             ("run", "threads"),
                             ("run", "device"), ("data", "root"), ("data", "download")})


@dataclass
class RunConfig:
    """A validated run configuration (one object per config file; one run per seed)."""

    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    early_stopping: EarlyStoppingSection = field(default_factory=EarlyStoppingSection)
    snapshots: SnapshotsSection = field(default_factory=SnapshotsSection)
    source: str = field(default="config", compare=False, repr=False)

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str = "config",
                  override_keys: Iterable[str] = ()) -> RunConfig:
        """Validate a nested dict (as ``tomllib`` returns it) into a :class:`RunConfig`."""
        return _parse(doc, source, frozenset(override_keys))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as nested plain dicts (what ``config.toml`` of a run holds)."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            sec = getattr(self, name)
            d = {f.name: copy.deepcopy(getattr(sec, f.name)) for f in dataclasses.fields(sec)
                 if f.name not in ("kwargs", "hyperparameters")}
            if name == "model":
                d.pop("name" if sec.factory else "factory")
                d.update(copy.deepcopy(sec.kwargs))
            if name == "data":  # a factory's data: its keys only (a config without one: as before)
                if sec.factory:
                    for key in DATA_NAME_ONLY:
                        d.pop(key)
                    d["kwargs"] = copy.deepcopy(sec.kwargs)
                else:
                    d.pop("factory")
            if name == "optimizer":
                d.update(copy.deepcopy(sec.hyperparameters))
            out[name] = d
        return out

    def for_seed(self, seed: int) -> RunConfig:
        """A copy that runs only ``seed``."""
        cfg = copy.deepcopy(self)
        cfg.run.seeds = [int(seed)]
        return cfg

    @property
    def full_batch(self) -> bool:
        """Whether each step sees the whole training set."""
        return self.data.batch_size == "full" or registry.is_full_batch(
            self.optimizer.name, self.optimizer.hyperparameters)


#: keys added after run directories were first written, with their defaults: at the default
#: they are left out of :func:`result_view`, so older runs (and studies' config hashes) still match
ADDED_KEYS: dict[tuple[str, str], Any] = {("data", "permute_pixels"): False, ("data", "targets"): "labels"}


def result_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` without :data:`NON_RESULT_KEYS` (and :data:`ADDED_KEYS` at their defaults) — two
    runs with equal views give equal results."""
    out = copy.deepcopy(dict(doc))
    for sec, key in NON_RESULT_KEYS:
        if isinstance(out.get(sec), dict):
            out[sec].pop(key, None)
    for (sec, key), default in ADDED_KEYS.items():
        table = out.get(sec)
        if isinstance(table, dict) and key in table and type(table[key]) is type(default) and table[key] == default:
            del table[key]
    return out


# ---------------------------------------------------------------------- parsing


def _error(source: str, key: str, overrides: frozenset[str], what: str) -> UsageError:
    src = f"{source} (--set)" if key in overrides else source
    return UsageError(f"{src}: {what}")


def _check_field(sec_name: str, f: dataclasses.Field, value: Any, source: str,
                 overrides: frozenset[str]) -> Any:
    key = f"{sec_name}.{f.name}"
    try:
        return f.metadata["check"](value)
    except Bad as bad:
        raise _error(source, key, overrides, f"{key} must be {bad}, got {_show(value)}") from None


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _parse(doc: Mapping[str, Any], source: str, overrides: frozenset[str]) -> RunConfig:
    if not isinstance(doc, Mapping):
        raise UsageError(f"{source}: a config is a TOML document of tables")
    for name, value in doc.items():
        if name not in SECTIONS:
            raise _error(source, name, overrides,
                         f"unknown table [{name}]; allowed: {', '.join(SECTIONS)}")
        if not isinstance(value, Mapping):
            raise _error(source, name, overrides, f"{name} must be a table [{name}], got {_show(value)}")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = dict(doc.get(name, {}))
        fields = {f.name: f for f in dataclasses.fields(cls) if "check" in f.metadata}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in raw.items():
            if key in fields:
                values[key] = _check_field(name, fields[key], value, source, overrides)
            else:
                extra[key] = value
        if name == "model":
            if values.get("factory"):
                if "name" in raw:
                    raise _error(source, "model.name", overrides, "model.name and model.factory both given; "
                                 "keep one (a factory's keyword arguments are the other keys of [model])")
                values["kwargs"] = dict(extra)
            else:
                values["kwargs"] = _model_kwargs(values.get("name", "mlp-digits"), extra, source, overrides)
        elif name == "data" and not extra:
            _check_data_factory(values, raw, source, overrides)
        elif name == "optimizer":
            values["hyperparameters"] = _hyperparameters(
                values.get("name", "sgd"), extra, "optimizer", source, overrides)
        elif extra:
            key = next(iter(extra))
            raise _error(source, f"{name}.{key}", overrides,
                         f"unknown key '{name}.{key}'; allowed: {', '.join(fields)}")
        sections[name] = cls(**values)
    cfg = RunConfig(**sections, source=source)
    if cfg.optimizer.name in registry.OPTIMIZERS and cfg.full_batch and cfg.data.batch_size not in ("full",):
        cfg.data.batch_size = "full"
    return cfg


def _check_data_factory(values: dict[str, Any], raw: Mapping[str, Any], source: str,
                        overrides: frozenset[str]) -> None:
    """``[data]``: a factory excludes the keys of the built-in data sets; kwargs need a factory."""
    if values.get("factory"):
        for key in DATA_NAME_ONLY:
            if key in raw:
                raise _error(source, f"data.{key}", overrides,
                             f"data.{key} does not apply to data.factory (your factory's data are used as "
                             "it returns them); remove it, or remove data.factory")
    elif values.get("kwargs"):
        raise _error(source, "data.kwargs", overrides, "data.kwargs are keyword arguments of data.factory, "
                     "but no data.factory is given; set data.factory or remove data.kwargs")


def _model_kwargs(name: str, extra: dict[str, Any], source: str, overrides: frozenset[str]) -> dict:
    if not is_model_name(name):
        raise _error(source, "model.name", overrides,
                     f"model.name must be one of {', '.join(MODELS)} or torchvision:<model>, got {name!r}")
    allowed = MODEL_KWARGS.get(name)
    if allowed is not None:
        for key in extra:
            if key not in allowed:
                raise _error(source, f"model.{key}", overrides,
                             f"unknown key 'model.{key}'; allowed: name, loss, {', '.join(allowed)}")
    return dict(extra)


def _hyperparameters(name: str, extra: dict[str, Any], prefix: str, source: str,
                     overrides: frozenset[str]) -> dict[str, Any]:
    if name not in registry.OPTIMIZERS:
        raise _error(source, f"{prefix}.name", overrides,
                     f"{prefix}.name must be one of {', '.join(registry.OPTIMIZERS)}, got {name!r}")
    spec = registry.optimizer_spec(name)
    defaults = registry.hyperparameter_defaults(name)
    stale = [k for k in extra if k not in defaults and f"{prefix}.{k}" not in overrides]
    if stale and f"{prefix}.name" in overrides:  # --set switched the optimizer: name every leftover
        keys = ", ".join(f"{prefix}.{k}" for k in stale)
        drop = " ".join(f"--set {prefix}.{k}=" for k in stale)
        raise UsageError(f"{source}: {keys} {'does' if len(stale) == 1 else 'do'} not apply to "
                         f"{prefix}.name = {name!r} (from --set); drop {'it' if len(stale) == 1 else 'them'} "
                         f"with {drop} ({name} takes: {', '.join(defaults)})")
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in defaults.items() if v is not None}
    if isinstance(out.get("betas"), tuple):
        out["betas"] = list(out["betas"])
    for key, value in extra.items():
        full = f"{prefix}.{key}"
        if key not in defaults:
            allowed = ", ".join(["name", *defaults])
            raise _error(source, full, overrides, f"unknown key '{full}'; allowed: {allowed}")
        if key == "base" and spec.wraps_base:
            if not isinstance(value, Mapping):
                raise _error(source, full, overrides,
                             f'{full} must be a table like {{name = "sgd", lr = 0.1}}, got {_show(value)}')
            base = dict(value)
            base_name = base.pop("name", "sgd")
            if base_name not in registry.OPTIMIZERS or registry.optimizer_spec(base_name).wraps_base:
                plain = [n for n, s in registry.OPTIMIZERS.items() if not s.wraps_base]
                raise _error(source, f"{full}.name", overrides,
                             f"{full}.name must be one of {', '.join(plain)}, got {_show(base_name)}")
            out[key] = {"name": base_name,
                        **_hyperparameters(base_name, base, full, source, overrides)}
            continue
        try:
            out[key] = hyperparameter(key, value, defaults[key])
        except Bad as bad:
            raise _error(source, full, overrides, f"{full} must be {bad}, got {_show(value)}") from None
    if spec.wraps_base and "base" not in extra:
        out["base"] = {"name": "sgd", **_hyperparameters("sgd", {}, f"{prefix}.base", source, overrides)}
    return out


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read, override and validate a config file."""
    doc = read_toml(path)
    doc, keys = apply_overrides(doc, overrides)
    return RunConfig.from_dict(doc, source=Path(path).name, override_keys=keys)


def as_config(config: RunConfig | Mapping[str, Any] | str | Path) -> RunConfig:
    """Accept a :class:`RunConfig`, a nested dict or a TOML path."""
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, Mapping):
        return RunConfig.from_dict(config, source="config")
    raise UsageError(f"config must be a RunConfig, a dict or a TOML path, got {type(config).__name__}")


def schema() -> dict[str, list[tuple[str, Any, str]]]:
    """``{table: [(key, default, description), ...]}`` — the reference in ``docs/runs.md``."""
    out = {}
    for name, cls in SECTIONS.items():
        rows = []
        for f in dataclasses.fields(cls):
            if "doc" in f.metadata:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                rows.append((f.name, default, f.metadata["doc"]))
        out[name] = rows
    return out


__all__ = [
    "DataSection",
    "EarlyStoppingSection",
    "ModelSection",
    "OptimizerSection",
    "RunConfig",
    "RunSection",
    "ScheduleSection",
    "SnapshotsSection",
    "apply_overrides",
    "as_config",
    "load_config",
    "parse_override",
    "read_toml",
    "result_view",
    "schema",
]
