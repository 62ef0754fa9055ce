"""Optimizers by name: the table that configs, studies and the CLI build optimizers from.

=======================  ==========================================================  ==========
name                     optimizer                                                   batches
=======================  ==========================================================  ==========
``sgd``                  ``torch.optim.SGD`` (momentum 0 by default)                 mini-batch
``momentum``             ``torch.optim.SGD(momentum=0.9)`` — PyTorch's heavy ball:   mini-batch
                         b ← μb + g, θ ← θ − ηb (equals seed
                         004's v ← μv − ηg with v = −ηb at constant η)
``nesterov``             ``torch.optim.SGD(momentum=0.9, nesterov=True)``            mini-batch
``adam``                 ``torch.optim.Adam``                                        mini-batch
``adamw``                ``torch.optim.AdamW``                                       mini-batch
``gd``                   ``torch.optim.SGD`` on the whole training set as one batch  full batch
``rolling-ball``         :class:`topograph.optim.rolling_ball.RollingBall`           mini-batch
``quasi-newton``         :class:`topograph.optim.quasi_newton.QuasiNewton`           full batch
``guided-exploration``   :class:`topograph.optim.guided.GuidedExploration` wrapped   as base
                         around a base optimizer given as ``base = {name = ..., ...}``
``sam``                  :class:`topograph.optim.sam.SAM` (Sharpness-Aware           as base
                         Minimization; ASAM with ``adaptive = true``) wrapped
                         around a base optimizer given as ``base = {name = ..., ...}``
=======================  ==========================================================  ==========

Every entry builds a ``torch.optim.Optimizer``; the training loop always calls ``optimizer.step(closure)`` with
``closure(backward=True)`` (see :mod:`topograph.optim.closure`).

Allowed hyperparameters are the keyword arguments of the optimizer's constructor, minus
those that are not hyperparameters (``params``, ``foreach``, ``fused``, ``differentiable``,
``capturable``, ``maximize``, ``modules``); the registry's fixed settings (e.g. ``nesterov``
for ``nesterov``) cannot be overridden.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from topograph.errors import UsageError
from topograph.optim.guided import GuidedExploration
from topograph.optim.quasi_newton import QuasiNewton
from topograph.optim.rolling_ball import RollingBall
from topograph.optim.sam import SAM

#: constructor arguments that are implementation switches, not hyperparameters
_NOT_HYPERPARAMETERS = frozenset({
    "params", "base_optimizer", "foreach", "fused", "differentiable", "capturable", "maximize",
    "modules", "self",
})


@dataclass(frozen=True)
class OptimizerSpec:
    """One registry entry.

    Attributes
    ----------
    name: the registry name.
    cls: the optimizer class.
    defaults: the registry's default hyperparameters (the user may override them).
    fixed: settings the entry stands for (the user may not override them).
    full_batch: the training loop feeds the whole training set as one batch.
    wraps_base: the optimizer wraps a base optimizer built from ``base = {name = ...}``.
    description: one line for listings.
    """

    name: str
    cls: type[torch.optim.Optimizer]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    full_batch: bool = False
    wraps_base: bool = False
    description: str = ""


OPTIMIZERS: dict[str, OptimizerSpec] = {
    s.name: s
    for s in (
        OptimizerSpec("sgd", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0},
                      description="mini-batch SGD"),
        OptimizerSpec("momentum", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9},
                      description="mini-batch SGD with heavy-ball momentum (PyTorch form)"),
        OptimizerSpec("nesterov", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9},
                      fixed={"nesterov": True}, description="mini-batch SGD with Nesterov momentum"),
        OptimizerSpec("adam", torch.optim.Adam, {"lr": 1e-3}, description="Adam"),
        OptimizerSpec("adamw", torch.optim.AdamW, {"lr": 1e-3}, description="AdamW"),
        OptimizerSpec("gd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.0}, full_batch=True,
                      description="full-batch gradient descent"),
        OptimizerSpec("rolling-ball", RollingBall,
                      description="Rolling Ball Optimizer (arXiv 2505.19527)"),
        OptimizerSpec("quasi-newton", QuasiNewton, full_batch=True,
                      description="L-BFGS with golden-section line search (arXiv 2602.21276)"),
        OptimizerSpec("guided-exploration", GuidedExploration,
                      wraps_base=True, description="Guided Exploration around a base optimizer"),
        OptimizerSpec("sam", SAM, wraps_base=True,
                      description="Sharpness-Aware Minimization around a base optimizer (Foret et al. 2021)"),
    )
}


def optimizer_names() -> tuple[str, ...]:
    """The registry names, in table order."""
    return tuple(OPTIMIZERS)


def optimizer_spec(name: str) -> OptimizerSpec:
    """The registry entry of ``name``; an unknown name raises a one-line :class:`UsageError`."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"optimizer {name!r} is unknown; choose one of {', '.join(OPTIMIZERS)}"
        ) from None


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The class behind ``name``."""
    return optimizer_spec(name).cls


def _constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    return {
        n: p for n, p in sig.parameters.items()
        if n not in _NOT_HYPERPARAMETERS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def hyperparameter_defaults(name: str) -> dict[str, Any]:
    """``{hyperparameter: default}`` of ``name`` (registry defaults over the constructor's).

    For the wrappers (``guided-exploration``, ``sam``) the ``base`` entry is a table.
    """
    spec = optimizer_spec(name)
    out: dict[str, Any] = {}
    for n, p in _constructor_parameters(spec.cls).items():
        if n in spec.fixed:
            continue
        out[n] = None if p.default is inspect.Parameter.empty else p.default
    out.update(spec.defaults)
    if spec.wraps_base:
        out["base"] = {"name": "sgd"}
    return out


def allowed_hyperparameters(name: str) -> tuple[str, ...]:
    """The hyperparameter names ``name`` accepts."""
    return tuple(hyperparameter_defaults(name))


def is_full_batch(name: str, hyperparameters: Mapping[str, Any] | None = None) -> bool:
    """Whether the loop feeds the whole training set as one batch (a wrapper inherits its base's)."""
    spec = optimizer_spec(name)
    if spec.wraps_base:
        base = (hyperparameters or {}).get("base") or {"name": "sgd"}
        return is_full_batch(base.get("name", "sgd"), base)
    return spec.full_batch


def build_optimizer(
    name: str,
    params: Iterable[torch.Tensor] | Iterable[dict],
    *,
    model: nn.Module | None = None,
    **hyperparameters: Any,
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over ``params`` with the given hyperparameters.

    ``model`` is passed on as ``modules=`` to optimizers that take it (Rolling Ball uses it to
    keep BatchNorm statistics consistent).  For the wrappers (``guided-exploration``, ``sam``),
    ``base`` is a mapping ``{"name": ..., **hyperparameters}`` built first over the same parameters; the remaining
    hyperparameters configure the wrapper.  Unknown hyperparameters and constructor
    ``ValueError``s become one-line :class:`UsageError`s.
    """
    spec = optimizer_spec(name)
    cls = optimizer_class(name)
    allowed = allowed_hyperparameters(name) or ()
    unknown = [k for k in hyperparameters if k not in allowed]
    if unknown:
        raise UsageError(
            f"optimizer {name!r} has no hyperparameter {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )
    kwargs = {k: v for k, v in spec.defaults.items()}
    kwargs.update(hyperparameters)
    kwargs.update(spec.fixed)
    if "betas" in kwargs and isinstance(kwargs["betas"], list):
        kwargs["betas"] = tuple(kwargs["betas"])
    ctor = inspect.signature(cls.__init__).parameters
    if model is not None and "modules" in ctor:
        kwargs["modules"] = model
    try:
        if spec.wraps_base:
            base_cfg = dict(kwargs.pop("base", None) or {"name": "sgd"})
            base_name = base_cfg.pop("name", "sgd")
            if optimizer_spec(base_name).wraps_base:
                raise UsageError(f"optimizer {name!r}: base must be a plain optimizer, got {base_name!r}")
            base = build_optimizer(base_name, params, model=model, **base_cfg)
            return cls(base, **kwargs)
        return cls(params, **kwargs)
    except UsageError:
        raise
    except (ValueError, TypeError) as err:
        raise UsageError(f"optimizer {name!r}: {err}") from None


__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "allowed_hyperparameters",
    "build_optimizer",
    "hyperparameter_defaults",
    "is_full_batch",
    "optimizer_class",
    "optimizer_names",
    "optimizer_spec",
]
