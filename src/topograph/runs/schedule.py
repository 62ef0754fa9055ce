r"""Learning-rate schedules: torch's own schedulers, stepped where each one expects.

``none``
    a constant learning rate.
``step``
    ``torch.optim.lr_scheduler.StepLR(step_size, gamma)``, stepped once per epoch:
    η_e = η₀ · γ^⌊e / step_size⌋.
``cosine``
    ``CosineAnnealingLR(T_max, eta_min)``, stepped once per epoch:
    η_e = η_min + ½(η₀ − η_min)(1 + cos(π e / T_max)).
``sgdr``
    ``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)`` — SGDR (Loshchilov & Hutter 2017):
    η = η_min + ½(η₀ − η_min)(1 + cos(π T_cur / T_i)), where T_cur counts
    epochs since the last restart and is updated **every batch** with fractional epochs; at
    T_cur = T_i the rate jumps back to η₀ and T_{i+1} = T_mult · T_i (restarts at epochs 1, 3,
    7, 15, … for T_0 = 1, T_mult = 2).  After the optimizer step on batch i of epoch e
    (0-based, of n), the loop calls ``scheduler.step(e + (i + 1)/n)``, so batch i runs at the
    rate of the fractional epoch e + i/n exactly.

Scheduler state is part of every checkpoint (``state_dict``), so schedules resume exactly.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, CosineAnnealingWarmRestarts, LRScheduler, StepLR

from topograph.runs.config import ScheduleSection


def build_scheduler(optimizer: Optimizer, section: ScheduleSection, *, epochs: int) -> LRScheduler | None:
    """The scheduler ``section`` asks for (``None`` for a constant rate)."""
    if section.name == "none":
        return None
    if section.name == "step":
        return StepLR(optimizer, step_size=section.step_size, gamma=section.gamma)
    if section.name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=section.t_max or epochs, eta_min=section.eta_min)
    if section.name == "sgdr":
        return CosineAnnealingWarmRestarts(optimizer, T_0=section.t_0, T_mult=section.t_mult,
                                           eta_min=section.eta_min)
    raise AssertionError(section.name)  # the config validated the name


def steps_per_batch(scheduler: LRScheduler | None) -> bool:
    """True when the scheduler is stepped after every batch with a fractional epoch (SGDR)."""
    return isinstance(scheduler, CosineAnnealingWarmRestarts)


def after_batch(scheduler: LRScheduler | None, epoch: int, batch: int, batches: int) -> None:
    """Step a per-batch scheduler after batch ``batch`` (0-based) of epoch ``epoch``."""
    if scheduler is not None and steps_per_batch(scheduler):
        scheduler.step(epoch + (batch + 1) / batches)


def after_epoch(scheduler: LRScheduler | None) -> None:
    """Step a per-epoch scheduler at the end of an epoch."""
    if scheduler is not None and not steps_per_batch(scheduler):
        scheduler.step()


def current_lr(optimizer: Optimizer) -> float:
    """The learning rate of the first parameter group (of the base optimizer for wrappers)."""
    group = optimizer.param_groups[0]
    lr = group.get("lr", float("nan"))
    return float(lr.item() if isinstance(lr, torch.Tensor) else lr)


__all__ = ["after_batch", "after_epoch", "build_scheduler", "current_lr", "steps_per_batch"]
