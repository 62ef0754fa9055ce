"""Early stopping as in seed 003: stop on a NaN/inf loss, or after ``patience`` epochs in which
the monitored loss (validation if there is a validation split, else training) did not fall
below its best value by more than ``min_delta``.

The state is three numbers, saved in every checkpoint, so a resumed run stops where the
uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """Tracks the best monitored loss; :meth:`update` says why to stop, or ``None``."""

    patience: int = 0
    min_delta: float = 0.0
    stop_on_nonfinite: bool = True
    best: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, loss: float, epoch: int) -> str | None:
        """Record the monitored loss after ``epoch``; return a stop reason or ``None``."""
        if not math.isfinite(loss):
            return "non-finite loss" if self.stop_on_nonfinite else None
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return None
        self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            return f"no improvement for {self.patience} epochs"
        return None

    def state_dict(self) -> dict:
        return {"best": float(self.best), "best_epoch": int(self.best_epoch), "bad_epochs": int(self.bad_epochs)}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


__all__ = ["EarlyStopping"]
