"""Calling a training closure with or without the backward pass.

topograph's optimizers call ``closure(backward: bool = True)``: the closure zeroes the
gradients, computes the loss on the current batch, runs ``loss.backward()`` only if asked and
returns the loss.  Plain ``torch.optim``-style closures with no argument work too; they always
run backward, so a forward-only evaluation of such a closure still pays for a backward pass
(and is counted as a gradient evaluation).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import Tensor

from topograph.errors import UsageError


def accepts_backward(closure: Callable) -> bool:
    """True when ``closure`` takes a ``backward`` keyword (or ``**kwargs``)."""
    try:
        parameters = inspect.signature(closure).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "backward" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def require_closure(closure: Callable | None, optimizer: str) -> Callable:
    """Raise a one-line :class:`UsageError` when ``step`` was called without a closure."""
    if closure is None or not callable(closure):
        raise UsageError(
            f"{optimizer}.step needs a closure: closure(backward=True) zeroes the gradients, "
            "computes the loss on the batch, calls loss.backward() if asked and returns the loss"
        )
    return closure


def evaluate_closure(closure: Callable, *, backward: bool, forward_only_ok: bool) -> tuple[Tensor, bool]:
    """Run the closure; return ``(loss, did_backward)``.

    With ``backward=False`` and a closure that accepts ``backward``, the closure runs under
    ``torch.no_grad()`` with ``backward=False``; otherwise it runs with gradients enabled
    and performs its backward pass.  ``forward_only_ok`` is :func:`accepts_backward` of the
    closure, computed once per ``step``.
    """
    if not backward and forward_only_ok:
        with torch.no_grad():
            loss = closure(backward=False)
        return _as_tensor(loss), False
    with torch.enable_grad():
        loss = closure(backward=True) if forward_only_ok else closure()
    return _as_tensor(loss), True


def _as_tensor(loss) -> Tensor:
    if isinstance(loss, Tensor):
        return loss.detach()
    if isinstance(loss, (int, float)):
        return torch.tensor(float(loss))
    raise UsageError(f"closure must return the loss as a tensor or a float, got {type(loss).__name__}")
