"""Optimizers that wrap another: Guided Exploration and SAM act on a base optimizer's step.

A :class:`WrappingOptimizer` shares the base's ``param_groups``, ``defaults`` and ``state``, so a
learning-rate scheduler or ``zero_grad`` on the wrapper acts on the base and a checkpoint of the
wrapper holds the base's state; its own state (counters, radii, warm starts) lives in
``own_state`` and is saved next to the base's under ``STATE_KEY``.  It is still a
``torch.optim.Optimizer``: step hooks and the profiler's record of ``step`` work as for any.
"""

from __future__ import annotations

from torch import Tensor
from torch.optim import Optimizer

from topograph.errors import UsageError


class WrappingOptimizer(Optimizer):
    """Base class of optimizers around ``base_optimizer``; subclasses define ``STATE_KEY`` and
    :meth:`_fresh_state` (the initial ``own_state``, every key it may hold)."""

    STATE_KEY = "own"

    def __init__(self, base_optimizer: Optimizer) -> None:
        name = type(self).__name__
        if not isinstance(base_optimizer, Optimizer) or isinstance(base_optimizer, type(self)):
            raise UsageError(f"{name}: base_optimizer must be a torch.optim.Optimizer (not another {name}), "
                             f"got {type(base_optimizer).__name__}")
        # torch.optim.Optimizer's machinery (step hooks); the groups are then the base's, so that
        # schedulers, zero_grad and add_param_group act on it
        super().__init__([{"params": list(g["params"])} for g in base_optimizer.param_groups],
                         dict(base_optimizer.defaults))
        self.base_optimizer = base_optimizer
        self.param_groups = base_optimizer.param_groups
        self.defaults = base_optimizer.defaults
        self.state = base_optimizer.state
        self.own_state: dict = self._fresh_state()

    def _fresh_state(self) -> dict:
        raise NotImplementedError

    def add_param_group(self, param_group: dict) -> None:
        if "base_optimizer" in self.__dict__:
            self.base_optimizer.add_param_group(param_group)
        else:  # during Optimizer.__init__ only
            super().add_param_group(param_group)

    def state_dict(self) -> dict:
        """``{"base": base_optimizer.state_dict(), STATE_KEY: the wrapper's own state}``."""
        return {"base": self.base_optimizer.state_dict(), self.STATE_KEY: _copied(self.own_state)}

    def load_state_dict(self, state_dict: dict) -> None:
        name, key = type(self).__name__, self.STATE_KEY
        if not isinstance(state_dict, dict) or "base" not in state_dict or key not in state_dict:
            raise UsageError(f"{name}.load_state_dict: expected a dict with keys 'base' and {key!r} "
                             f"(from {name}.state_dict())")
        fresh = self._fresh_state()
        unknown = set(state_dict[key]) - set(fresh)
        if unknown:
            raise UsageError(f"{name}.load_state_dict: unknown key {sorted(unknown)[0]!r} in {key!r}")
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.state = self.base_optimizer.state
        self.own_state = {**fresh, **_copied(state_dict[key])}


def _copied(state: dict) -> dict:
    return {k: (v.clone() if isinstance(v, Tensor) else (dict(v) if isinstance(v, dict) else v))
            for k, v in state.items()}


__all__ = ["WrappingOptimizer"]
