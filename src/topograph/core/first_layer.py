"""The first-layer shortcut: a network's first linear layer is linear in its weights.

For points θ = θ* + Σ_j α_j δ_j (a plane, a line, a path), the first layer's pre-activation
over a data chunk X is

    X W(θ)ᵀ + b(θ) = (X W*ᵀ + b*) + Σ_j α_j (X D_jᵀ + d_j),

so the 1 + m products X·Wᵀ are computed once per plane instead of once per point — for the
784-128-64-10 MLP this removes about 11× of a grid's FLOPs (perf-baseline.md §3).  This module
finds where that layer is; the engines that use it are :class:`topograph.landscape.PlaneEvaluator`
(no-grad grids) and :class:`topograph.paths.PathEvaluator` (differentiable path losses).

It applies to a plain ``nn.Sequential`` whose first parametrised child is ``nn.Linear``,
optionally preceded by ``nn.Flatten(1, -1)`` children.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

#: children that act elementwise (shape-preserving, no parameters): applied to (K, r, H) as is
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
               nn.Identity, nn.Mish, nn.Hardtanh, nn.ReLU6, nn.CELU, nn.SELU, nn.Hardswish,
               nn.Hardsigmoid, nn.Tanhshrink, nn.Softsign, nn.LogSigmoid)

@dataclass(frozen=True)
class FirstLayerPlan:
    """Where a model's first linear layer sits, found by inspecting the module."""

    linear_name: str                 # child name of the first nn.Linear
    weight_slice: slice              # its weight inside the flat vector
    bias_slice: slice | None         # its bias inside the flat vector (None: absent or frozen)
    rest: tuple[tuple[str, nn.Module], ...]  # the children after it
    flattens: bool = True            # an nn.Flatten precedes it (else inputs must be 2-D)


def first_layer_plan(objective: Any) -> tuple[FirstLayerPlan | None, str]:
    """The first-layer plan of ``objective``'s module, or ``(None, why not)``."""
    module = getattr(objective, "module", None)
    if module is None:
        return None, "the objective has no module"
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return None, "the module is not a plain nn.Sequential"
    children = list(module.named_children())
    i = 0
    while i < len(children) and isinstance(children[i][1], nn.Flatten):
        fl = children[i][1]
        if fl.start_dim != 1 or fl.end_dim != -1:
            return None, "a Flatten other than Flatten(1, -1) precedes the first layer"
        i += 1
    if i >= len(children) or not isinstance(children[i][1], nn.Linear):
        return None, "the first parametrised child is not nn.Linear"
    name, lin = children[i]
    spec = objective.spec
    w_name, b_name = f"{name}.weight", f"{name}.bias"
    if w_name not in spec.names:
        return None, "the first layer's weight is frozen"
    b_slice = spec.slice_of(b_name) if b_name in spec.names else None
    rest = tuple(children[i + 1:])
    if getattr(objective, "buffers", "eval") == "batch" and any(
        isinstance(m, nn.modules.batchnorm._NormBase) for _, c in rest for m in c.modules()
    ):
        return None, "BatchNorm with buffers='batch' normalises per chunk"
    return FirstLayerPlan(name, spec.slice_of(w_name), b_slice, rest, flattens=i > 0), ""


def stacked_linear_weights(child: nn.Linear, weight: Tensor | None, bias: Tensor | None, k: int,
                           like: Tensor) -> tuple[Tensor, Tensor | None]:
    """Per-point weights (K, out, in) and bias (K, out) or ``None`` of an ``nn.Linear`` after the
    first layer; a frozen tensor (``None`` here) is the module's own, shared by the K points."""
    if weight is None:
        weight = child.weight.detach().to(like).expand(k, -1, -1)
    if bias is None and child.bias is not None:
        bias = child.bias.detach().to(like).expand(k, -1)
    return weight, bias


def stacked_linear(child: nn.Linear, h: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """``child`` on the stacked activations h (K, r, in) of K points with per-point parameters:
    one batched GEMM, h W_kᵀ + b_k → (K, r, out).  Shared by the maps' and the paths' engines."""
    w, b = stacked_linear_weights(child, weight, bias, h.shape[0], h)
    wt = w.transpose(1, 2)
    return torch.bmm(h, wt) if b is None else torch.baddbmm(b.unsqueeze(1), h, wt)


__all__ = ["ELEMENTWISE", "FirstLayerPlan", "first_layer_plan", "stacked_linear", "stacked_linear_weights"]
