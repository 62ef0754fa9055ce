"""Optimizers: topograph's landscape-aware ones and the registry that builds any of them by name.

All are ``torch.optim.Optimizer`` subclasses driven by ``step(closure)`` with
``closure(backward: bool = True)`` (:mod:`topograph.optim.closure`).  The classes are imported
lazily, so ``import topograph.optim`` stays cheap and the registry works before every
optimizer module exists::

    from topograph.optim import build_optimizer, RollingBall
    opt = build_optimizer("momentum", model.parameters(), lr=0.05)
"""

from __future__ import annotations

import importlib
from typing import Any

from topograph.optim import registry
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

_LAZY = {
    "RollingBall": "topograph.optim.rolling_ball",
    "QuasiNewton": "topograph.optim.quasi_newton",
    "GuidedExploration": "topograph.optim.guided",
    "SAM": "topograph.optim.sam",
    "MinibatchClosure": "topograph.optim.closure",
    "golden_section_search": "topograph.optim.line_search",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'topograph.optim' has no attribute {name!r}")


# the lazy classes (RollingBall, QuasiNewton, GuidedExploration, SAM) are left out of __all__ so
# that `from topograph.optim import *` works while one of their modules is still missing
__all__ = list(registry.__all__)
