"""Checks a run makes before and after training: does the model fit the data and the loss the
targets, how does a stored config differ from a new one, and the summary's plain-JSON form."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from topograph.errors import UsageError
from topograph.runs.config import RunConfig
from topograph.runs.toml_writer import dumps as toml_dumps


def check_loss(model: nn.Module, train: tuple[Tensor, Tensor], cfg: RunConfig, source: str) -> None:
    """The loss suits the targets: cross-entropy for class labels, MSE for real-valued targets
    of the model's output shape."""
    x, y = train
    if cfg.model.loss == "cross-entropy" and y.is_floating_point():
        what = "the data's targets are real numbers" if cfg.data.factory else f"data.targets is {cfg.data.targets!r}"
        raise UsageError(f"{source}: model.loss 'cross-entropy' needs class labels, but {what}; use "
                         "model.loss = \"mse\"")
    if cfg.model.loss == "mse":
        if not y.is_floating_point():
            fix = ("return float targets from data.factory" if cfg.data.factory
                   else "set data.targets = \"inputs\" (an autoencoder)")
            raise UsageError(f"{source}: model.loss 'mse' needs real-valued targets, but data "
                             f"{cfg.data.label!r} has class labels; {fix} or use model.loss = \"cross-entropy\"")
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                shape = tuple(model(x[:2]).shape[1:])
        finally:
            model.train(was)
        if shape != tuple(y.shape[1:]):
            raise UsageError(f"{source}: model {cfg.model.label!r} outputs {shape} per sample but the "
                             f"targets are {tuple(y.shape[1:])}; model.loss 'mse' needs equal shapes")


def dataset_fingerprint(dataset: Any) -> str | None:
    fp = getattr(dataset, "fingerprint", None)
    try:
        return str(fp()) if callable(fp) else None
    except Exception:  # noqa: BLE001 - a fingerprint is informative only
        return None


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/inf
    return obj


def toml_roundtrip(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as it reads back from ``config.toml`` (drops ``None``, tuples become lists)."""
    return tomllib.loads(toml_dumps(doc))


def first_difference(a: Mapping, b: Mapping, prefix: str = "") -> str:
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        if k not in a:
            return f"{key} is new"
        if k not in b:
            return f"{key} was {a[k]!r}"
        if isinstance(a[k], Mapping) and isinstance(b[k], Mapping):
            if a[k] != b[k]:
                return first_difference(a[k], b[k], key + ".")
        elif a[k] != b[k]:
            return f"{key} was {a[k]!r}, now {b[k]!r}"
    return "?"


# ---------------------------------------------------------------------- public entry points


__all__ = ["check_loss", "dataset_fingerprint", "first_difference", "jsonable", "toml_roundtrip"]
