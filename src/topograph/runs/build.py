"""From a run's config to the objects it names: the device, the data set, the model and the loss.

The trainer builds a run from these, and a finished run directory (:class:`~topograph.runs.Run`)
rebuilds its model, data and loss from the same functions, so the two cannot drift apart; the
command line builds the model and data of ``--model``/``--data``/``--config`` with them too.
A ``[model]`` or ``[data]`` table names a built-in (``name``) or a factory of yours
(``factory = "pkg.module:fn"``, see :mod:`topograph.factories`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.data import load_dataset, load_factory_dataset
from topograph.errors import UsageError
from topograph.factories import first_line
from topograph.models import build_factory_model, build_model

#: the ``[model] loss`` names a config may use
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"cross-entropy": F.cross_entropy, "mse": F.mse_loss}


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA if available, else CPU; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"run.device is {name!r} but CUDA is not available here; use \"cpu\" or \"auto\"")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"run.device is {name!r} but MPS is not available here; use \"cpu\" or \"auto\"")
    return dev


def load_run_dataset(data: Mapping[str, Any], *, source: str = "config", label: str = "data.factory",
                     how: str | None = None):
    """:func:`topograph.data.load_dataset` with a config's ``[data]`` table, or
    :func:`topograph.data.load_factory_dataset` when it names a ``factory`` (its keyword
    arguments in ``kwargs``).  ``label`` and ``how`` say, in error lines, where the factory and
    its keyword arguments were given (``source``: the config file)."""
    if data.get("factory"):
        return load_factory_dataset(
            data["factory"], data.get("kwargs") or {},
            val_size=data.get("val_size", 0), seed=int(data.get("seed", 0)),
            limit_train=data.get("limit_train") or None, limit_test=data.get("limit_test") or None,
            flatten=bool(data.get("flatten", False)), label=f"{source}: {label}" if source else label,
            how=how or f"the [data.kwargs] table of {source}")
    return load_dataset(
        data["name"],
        root=data.get("root") or None,
        download=bool(data.get("download", False)),
        val_size=data.get("val_size", 0),
        seed=int(data.get("seed", 0)),
        flatten=bool(data.get("flatten", False)),
        normalize=bool(data.get("normalize", True)),
        limit_train=data.get("limit_train") or None,
        limit_test=data.get("limit_test") or None,
        permute_pixels=None if data.get("permute_pixels", False) is False else int(data["permute_pixels"]),
        targets=data.get("targets", "labels"),
    )


def build_run_model(model: Mapping[str, Any], seed: int, *, source: str = "config",
                    label: str = "model.factory", how: str | None = None) -> nn.Module:
    """The model of a config's ``[model]`` table (a ``name`` of :mod:`topograph.models` or a
    ``factory`` of yours, the other keys its keyword arguments), initialised with ``seed``.
    ``label`` and ``how`` say, in error lines, where a factory and its keyword arguments were
    given (``source``: the config file)."""
    kwargs = {k: v for k, v in model.items() if k not in ("name", "loss", "factory")}
    if model.get("factory"):
        return build_factory_model(model["factory"], seed=int(seed),
                                   label=f"{source}: {label}" if source else label,
                                   how=how or f"the other keys of [model] in {source}", **kwargs)
    return build_model(model["name"], seed=int(seed), **kwargs)


def check_model_fits(model: nn.Module, x: Tensor, *, model_label: str, data_label: str, source: str,
                     num_classes: int | None = None, at_least: bool = False, hint: str = "") -> None:
    """One forward pass on two samples: the model takes the data's inputs and has one output per
    class of the data (``at_least``: no fewer outputs than the labels need, for a user's data
    whose labels need not cover every class) — else one :class:`UsageError` line naming
    ``source`` (the config or the options), the model and the data."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2])
    except Exception as err:  # noqa: BLE001 - a shape or dtype mismatch inside the user's forward
        raise UsageError(
            f"{source}: model {model_label!r} does not fit data {data_label!r} "
            f"(inputs of shape {tuple(x.shape[1:])}, {x.dtype}): {first_line(err)}") from None
    finally:
        model.train(was)
    if not isinstance(out, Tensor):
        raise UsageError(f"{source}: model {model_label!r} returns a {type(out).__name__}, not a tensor; "
                         "its forward must return the outputs the loss takes")
    outputs = int(out.shape[-1]) if out.dim() >= 1 else 1
    if num_classes and (outputs < num_classes if at_least else outputs != num_classes):
        raise UsageError(
            f"{source}: model {model_label!r} has {outputs} outputs but data {data_label!r} has "
            f"{num_classes} classes{hint}")


def run_loss(model: Mapping[str, Any]) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss function a config's ``[model] loss`` names (default cross-entropy)."""
    return LOSSES[model.get("loss", "cross-entropy")]


__all__ = ["LOSSES", "build_run_model", "check_model_fits", "load_run_dataset", "resolve_device", "run_loss"]
