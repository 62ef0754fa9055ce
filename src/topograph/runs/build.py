"""From a run's config to the objects it names: the device, the data set, the model and the loss.

The trainer builds a run from these, and a finished run directory (:class:`~topograph.runs.Run`)
rebuilds its model, data and loss from the same functions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.data import load_dataset
from topograph.errors import UsageError
from topograph.models import build_model

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


def load_run_dataset(data: Mapping[str, Any], *, source: str = "config"):
    """:func:`topograph.data.load_dataset` with a config's ``[data]`` table."""
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


def build_run_model(model: Mapping[str, Any], seed: int) -> nn.Module:
    """The model of a config's ``[model]`` table, initialised with the run's ``seed``."""
    kwargs = {k: v for k, v in model.items() if k not in ("name", "loss")}
    return build_model(model["name"], seed=int(seed), **kwargs)


def run_loss(model: Mapping[str, Any]) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss function a config's ``[model] loss`` names (default cross-entropy)."""
    return LOSSES[model.get("loss", "cross-entropy")]


__all__ = ["LOSSES", "build_run_model", "load_run_dataset", "resolve_device", "run_loss"]
