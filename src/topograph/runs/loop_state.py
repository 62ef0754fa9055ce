"""The training loop's resumable position and running sums (saved in every checkpoint)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from topograph.runs.legacy import current_names


class LoopState:
    """The loop's resumable position and running sums (all plain numbers + a few tensors)."""

    def __init__(self) -> None:
        self.epoch = 0              # epochs completed; index of the epoch in progress
        self.batch = 0              # next batch inside that epoch
        self.step = 0               # optimizer steps so far
        self.perm_state: Tensor | None = None   # batch generator state at the epoch's start
        self.ep_loss_sum: Tensor = torch.zeros(())
        self.ep_batches = 0
        self.ep_backward0 = 0
        self.ep_forward0 = 0
        self.ep_lr = math.nan
        self.ep_start = 0.0
        self.ep_train_seconds = 0.0
        self.forward_total = 0
        self.backward_total = 0
        self.backward_samples = 0
        self.elapsed = 0.0
        self.snapshots = 0
        self.last_snapshot_step = -1
        self.stop_reason = ""
        self.rows: list[dict[str, Any]] = []

    _NUMBERS = ("epoch", "batch", "step", "ep_batches", "ep_backward0", "ep_forward0", "ep_lr", "ep_start",
                "ep_train_seconds",
                "forward_total", "backward_total", "backward_samples", "elapsed", "snapshots",
                "last_snapshot_step", "stop_reason")

    def state_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._NUMBERS}
        d["ep_loss_sum"] = self.ep_loss_sum.detach().cpu().clone()
        d["perm_state"] = self.perm_state
        d["rows"] = [dict(r) for r in self.rows]
        return d

    def load(self, d: Mapping[str, Any], device: torch.device) -> None:
        """Restore from :meth:`state_dict` (also one written before the renaming in
        :mod:`topograph.runs.legacy`)."""
        d = current_names(d)
        for k in self._NUMBERS:
            setattr(self, k, d[k])
        self.ep_loss_sum = d["ep_loss_sum"].to(device)
        self.perm_state = d["perm_state"].cpu()
        self.rows = [current_names(r) for r in d["rows"]]


__all__ = ["LoopState"]
