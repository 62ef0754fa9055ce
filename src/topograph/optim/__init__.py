"""Optimizers: topograph's landscape-aware ones, the training closure, and the registry that
builds any optimizer by name.

All are ``torch.optim.Optimizer`` subclasses driven by ``step(closure)`` with
``closure(backward: bool = True)`` (:mod:`topograph.optim.closure`).

>>> from torch import nn
>>> from topograph.optim import build_optimizer, optimizer_names
>>> opt = build_optimizer("momentum", nn.Linear(3, 1).parameters(), lr=0.05)
>>> type(opt).__name__, opt.param_groups[0]["momentum"]
('SGD', 0.9)
>>> "rolling-ball" in optimizer_names()
True
"""

from topograph.optim.closure import MinibatchClosure, Span
from topograph.optim.guided import GuidedExploration
from topograph.optim.line_search import bracket_golden_search, golden_section_search
from topograph.optim.quasi_newton import QuasiNewton
from topograph.optim.registry import (
    OPTIMIZERS,
    OptimizerSpec,
    allowed_hyperparameters,
    build_optimizer,
    hyperparameter_defaults,
    is_full_batch,
    optimizer_class,
    optimizer_names,
    optimizer_spec,
)
from topograph.optim.rolling_ball import RollingBall
from topograph.optim.sam import SAM

__all__ = [
    "OPTIMIZERS", "SAM", "GuidedExploration", "MinibatchClosure", "OptimizerSpec", "QuasiNewton", "RollingBall",
    "Span", "allowed_hyperparameters", "bracket_golden_search", "build_optimizer", "golden_section_search",
    "hyperparameter_defaults", "is_full_batch", "optimizer_class", "optimizer_names", "optimizer_spec",
]
