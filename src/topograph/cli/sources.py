"""Where ``surface``, ``curvature`` and ``paths`` get their model, weights, data and loss.

Either a run directory made by ``topograph train`` (or a checkpoint inside one: the run's
config names everything), or a plain weights file of a model the project never saw::

    topograph surface --model mypkg.nets:resnet20 --weights my.pt --data mnist
    topograph surface --model resnet20 --model-arg in_channels=1 --model-arg image_size=28 \\
        --weights my.pt --data mypkg.data:load --data-arg n=2000
    topograph surface --config small.toml --weights my.pt

``--model`` is a model name of :mod:`topograph.models` or a factory ``pkg.module:fn`` /
``path/to/file.py:fn`` of yours (:mod:`topograph.factories`: imported with the current
directory on ``sys.path``, so your code runs), built with the ``--model-arg KEY=VALUE``
keyword arguments; ``--weights`` is its ``state_dict`` saved with ``torch.save`` (or a
checkpoint dict holding it under ``"model"`` or ``"state_dict"``), loaded with
``weights_only=True`` (nothing in it runs); ``--data`` is a data-set name or a data factory
(:mod:`topograph.data.factory`) with ``--data-arg KEY=VALUE``.  ``--config FILE`` takes the
``[model]`` and ``[data]`` tables of a run config instead (the tables ``topograph train``
reads).  Every mistake is one line naming the option, the file or the key (exit code 2).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click
from torch import nn

from topograph.data import SOURCES, Dataset
from topograph.errors import UsageError
from topograph.factories import FACTORY_FORMS, is_factory_spec
from topograph.io import load_weights, safe_torch_load
from topograph.models import MODELS, is_model_name
from topograph.runs.build import build_run_model, check_model_fits, load_run_dataset, run_loss
from topograph.runs.config import LOSSES, load_config

#: what to do with a weights file that is not a state_dict (for its one error line)
SAVE_STATE_DICT = "save the weights with torch.save(model.state_dict(), FILE) and give that file"


#: the options whose field name is not their spelling
OPTION_NAMES = {"model_args": "--model-arg", "data_args": "--data-arg"}


@dataclass(frozen=True)
class SourceOptions:
    """The options of :func:`source_options`, as the command received them."""

    model: str | None = None
    model_args: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    data: str | None = None
    data_args: tuple[str, ...] = ()
    data_root: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    loss: str | None = None
    config: str | None = None

    def given(self) -> list[str]:
        """The options given, as spelled on the command line."""
        return [OPTION_NAMES.get(f.name, f"--{f.name.replace('_', '-')}") for f in fields(self)
                if getattr(self, f.name) not in (None, ())]


def source_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the model/weights/data options to a click command; it receives them as one
    :class:`SourceOptions` in the keyword argument ``sources``."""
    names = [f.name for f in fields(SourceOptions)]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = SourceOptions(**{n: kwargs.pop(n) for n in names})
        return command(*args, sources=opts, **kwargs)

    options = [
        click.option("--model", "model", metavar="NAME_OR_FACTORY", default=None,
                     help="With --weights: the model, a name of topograph.models (resnet20, ...) or a "
                          "factory of yours, pkg.module:fn or path/to/file.py:fn (imported from the current "
                          "directory: your code runs)."),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
                     help="A keyword argument of --model (a TOML value, else a string). Repeatable."),
        click.option("--weights", "weights", multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False),
                     help="A weights file (a state_dict saved with torch.save; loaded with weights_only=True) "
                          "instead of a run directory; needs --model and --data, or --config."),
        click.option("--data", "data", metavar="NAME_OR_FACTORY", default=None,
                     help="With --weights: the data, a data set (digits, mnist, fashion-mnist, cifar10) or a "
                          "factory of yours, pkg.module:fn, returning {'train': (x, y), 'test': (x, y)}."),
        click.option("--data-arg", "data_args", multiple=True, metavar="KEY=VALUE",
                     help="A keyword argument of a --data factory (a TOML value, else a string). Repeatable."),
        click.option("--data-root", "data_root", type=click.Path(file_okay=False), default=None,
                     help="Folder of the built-in data sets [default: $TOPOGRAPH_DATA_DIR]."),
        click.option("--limit-train", "limit_train", type=click.IntRange(min=1), default=None,
                     help="With --weights: use only N training samples (a seeded subset)."),
        click.option("--limit-test", "limit_test", type=click.IntRange(min=1), default=None,
                     help="With --weights: use only N test samples (a seeded subset)."),
        click.option("--loss", "loss", type=click.Choice(list(LOSSES)), default=None,
                     help="With --model: the loss [default: cross-entropy]."),
        click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                     help="With --weights: a TOML file whose [model] and [data] tables name the model and "
                          "data (as in topograph train's configs), instead of --model/--data."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@dataclass
class WeightsSource:
    """The model(s), data and loss of ``--weights`` with ``--model``/``--data`` or ``--config``.

    ``models[i]`` holds the weights of ``weights[i]``; ``source`` names the options or the
    config file in error lines; ``model_label``/``data_label`` name the model and data."""

    models: list[nn.Module]
    weights: list[Path]
    dataset: Dataset
    loss_fn: Callable[..., Any]
    source: str
    model_label: str
    data_label: str


def parse_keyword(text: str, option: str) -> tuple[str, Any]:
    """``"width=16"`` → ``("width", 16)``: the value is TOML if it parses, else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UsageError(f"{option} {text!r}: expected KEY=VALUE with a keyword name, e.g. {option} width=16")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _keywords(texts: Sequence[str], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in texts:
        key, value = parse_keyword(text, option)
        if key in out:
            raise UsageError(f"{option} {key}: given twice; give each keyword once")
        out[key] = value
    return out


def _check_combination(opts: SourceOptions, positional: Sequence[str], count: int, command: str) -> None:
    given = opts.given()
    if positional:
        raise UsageError(f"{positional[0]}: a run directory (or checkpoint) and {' '.join(given)} exclude each "
                         "other (a run directory brings its own model, weights and data); give the run "
                         f"directory alone, or --weights with --model/--data (see `topograph {command} --help`)")
    if not opts.weights:
        raise UsageError(f"{given[0]} needs --weights FILE (the model's state_dict saved with torch.save); "
                         f"without it, give a run directory (see `topograph {command} --help`)")
    if opts.config is not None:
        clash = [o for o in given if o in ("--model", "--model-arg", "--data", "--data-arg", "--loss")]
        if clash:
            raise UsageError(f"{clash[0]}: --config {opts.config} names the model and data already; leave out "
                             f"{clash[0]}, or leave out --config")
    else:
        if opts.model is None:
            raise UsageError("--weights needs --model NAME_OR_FACTORY and --data NAME_OR_FACTORY (or --config "
                             "FILE naming them): a weights file holds no architecture")
        if opts.data is None:
            raise UsageError(f"--model {opts.model} needs --data NAME_OR_FACTORY: the data the model is "
                             "evaluated on (a data set such as mnist, or a factory pkg.module:fn)")
    if len(opts.weights) != count:
        want = "one --weights file" if count == 1 else f"{count} --weights files (one per solution)"
        raise UsageError(f"--weights given {len(opts.weights)} time(s); topograph {command} takes {want}")


def _model_table(opts: SourceOptions) -> dict[str, Any]:
    spec = opts.model.strip()
    table: dict[str, Any] = {"loss": opts.loss or "cross-entropy", **_keywords(opts.model_args, "--model-arg")}
    if is_model_name(spec):
        table["name"] = spec
    elif is_factory_spec(spec):
        table["factory"] = spec
    else:
        raise UsageError(f"--model {spec!r}: neither a model of topograph.models ({', '.join(MODELS)}, "
                         f"torchvision:NAME) nor a factory {FACTORY_FORMS}")
    return table


def _data_table(opts: SourceOptions) -> dict[str, Any]:
    spec = opts.data.strip()
    table: dict[str, Any] = {"limit_train": opts.limit_train, "limit_test": opts.limit_test}
    if spec.lower() in SOURCES:
        if opts.data_args:
            raise UsageError(f"--data-arg gives keyword arguments to a data factory, but --data {spec} is a "
                             "built-in data set; leave it out (--limit-train, --limit-test and --data-root apply)")
        table.update(name=spec.lower(), root=opts.data_root)
    elif is_factory_spec(spec):
        if opts.data_root is not None:
            raise UsageError(f"--data-root is the folder of the built-in data sets; --data {spec} is a factory "
                             "of yours: pass its folder with --data-arg instead")
        table.update(factory=spec, kwargs=_keywords(opts.data_args, "--data-arg"))
    else:
        raise UsageError(f"--data {spec!r}: neither a data set ({', '.join(SOURCES)}) nor a factory "
                         f"{FACTORY_FORMS}")
    return table


def load_state(module: nn.Module, path: Path, *, model_label: str,
               remedy: str = "give the weights of this model, or the model they were saved from") -> nn.Module:
    """``module`` with the weights of the file ``path``: a state_dict, or a checkpoint dict that
    holds one under ``"model"`` or ``"state_dict"``; loaded with ``weights_only=True``.  A
    damaged or foreign file, or weights of another architecture (the first mismatching key and
    both shapes), is one :class:`UsageError` line naming the file."""
    state = safe_torch_load(path, remedy=SAVE_STATE_DICT)
    if isinstance(state, Mapping) and not all(hasattr(v, "shape") for v in state.values()):
        for key in ("model", "state_dict"):  # a checkpoint of a training loop
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    return load_weights(module, state, path=path, model=f"the model {model_label}", remedy=remedy)


def weights_source(opts: SourceOptions, positional: Sequence[str], *, count: int,
                   command: str) -> WeightsSource | None:
    """The model(s) with the weights of ``--weights``, their data and loss; ``None`` when none
    of the options is given (the command works on run directories).  ``count`` weights files
    are needed (two for a path)."""
    if not opts.given():
        return None
    _check_combination(opts, positional, count, command)
    for w in opts.weights:
        if not Path(w).exists():
            raise UsageError(f"--weights {w}: no such file")
    if opts.config is not None:
        cfg = load_config(opts.config)
        doc = cfg.to_dict()
        model_table, data_table = doc["model"], doc["data"]
        for key in ("limit_train", "limit_test"):
            if getattr(opts, key) is not None:
                data_table[key] = getattr(opts, key)
        if opts.data_root is not None:
            if cfg.data.factory:
                raise UsageError(f"--data-root is the folder of the built-in data sets; {opts.config} names a "
                                 "data.factory (give its folder in [data.kwargs])")
            data_table["root"] = opts.data_root
        source = cfg.source
        model_label, data_label = cfg.model.label, cfg.data.label
        build = {"source": source}
        data_build = {"source": source}
        remedy = f"give the weights of this model, or fix [model] in {opts.config} to the model they were saved from"
    else:
        model_table, data_table = _model_table(opts), _data_table(opts)
        source = "--model/--data"
        model_label = model_table.get("factory") or model_table["name"]
        data_label = data_table.get("factory") or data_table["name"]
        build = {"source": "", "label": "--model", "how": "give them with --model-arg KEY=VALUE"}
        data_build = {"source": "", "label": "--data", "how": "give them with --data-arg KEY=VALUE"}
        remedy = "give the weights of this model, or the --model (and --model-arg) they were saved from"
    models = []  # the model first: its mistakes show before a large data set is read
    for w in opts.weights:
        module = build_run_model(model_table, 0, **build)
        models.append(load_state(module, Path(w), model_label=repr(model_label), remedy=remedy))
    try:
        dataset = load_run_dataset(data_table, **data_build)
    except UsageError as err:
        if data_table.get("factory"):
            raise
        raise UsageError(f"{err} (on the command line: --data-root DIR)") from None
    loss_fn = run_loss(model_table)
    _check_data(models[0], dataset, model_table.get("loss", "cross-entropy"), source=source,
                model_label=model_label, data_label=data_label)
    return WeightsSource(models=models, weights=[Path(w) for w in opts.weights], dataset=dataset,
                         loss_fn=loss_fn, source=source, model_label=model_label, data_label=data_label)


def _check_data(model: nn.Module, dataset: Dataset, loss: str, *, source: str, model_label: str,
                data_label: str) -> None:
    """The model takes the data's inputs, has outputs for its classes, and the loss suits the
    targets — else one line, before any long computation."""
    x, y = dataset.splits["train"]
    if loss == "cross-entropy" and y.is_floating_point():
        raise UsageError(f"{source}: the loss cross-entropy needs class labels, but the targets of "
                         f"{data_label!r} are real numbers; use the loss mse (--loss mse, or model.loss)")
    if loss == "mse" and not y.is_floating_point():
        raise UsageError(f"{source}: the loss mse needs real-valued targets, but {data_label!r} has class "
                         "labels; use the loss cross-entropy")
    factory_data = dataset.meta.get("source") == "factory"
    check_model_fits(model, x, model_label=model_label, data_label=data_label, source=source,
                     num_classes=dataset.num_classes if loss == "cross-entropy" else None,
                     at_least=factory_data)


__all__ = ["SourceOptions", "WeightsSource", "load_state", "parse_keyword", "source_options", "weights_source"]
