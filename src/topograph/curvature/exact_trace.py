"""The exact Hessian trace of piecewise-linear networks, from C backward passes — no probes.

For a loss L(θ) = (1/N) Σ_n ℓ(z_n(θ), y_n) of network outputs z_n ∈ R^C the Hessian splits as

    H = (1/N) Σ_n J_nᵀ H_ℓ,n J_n  +  (1/N) Σ_n Σ_c (∂ℓ/∂z_c) ∇²z_{n,c}          (GGN + rest)

(Schraudolph 2002; Martens 2020).  For a network of ``nn.Linear`` layers and piecewise-linear
activations (ReLU, LeakyReLU, ReLU6/Hardtanh, Identity, Flatten, Dropout in eval mode), every
output z_{n,c} is piecewise linear in any *single* weight with all the others fixed (that weight
enters one affine layer, and everything after it is piecewise linear), so the *diagonal* of
∇²z_{n,c} is zero almost everywhere and

    tr(H) = tr(GGN)      exactly (for almost every θ).

Write H_ℓ,n = S_n S_nᵀ.  For softmax cross-entropy H_ℓ = diag(p) − ppᵀ and, with r = √p,
S = diag(r) − p rᵀ (column c is r_c (e_c − p); Σ_c p_c (e_c − p)(e_c − p)ᵀ = diag(p) − ppᵀ since
Σ_c p_c = 1); for the mean squared error over D outputs H_ℓ = (2/D) I and S = √(2/D) I.  Then

    tr(GGN) = (1/N) Σ_n Σ_c ‖∇_θ (s_{n,c}ᵀ z_n)‖²,

a sum of squared *per-sample* gradient norms.  For a Linear layer W (out×in) with input a_n and
back-propagated signal δ_n = ∂(s_{n,c}ᵀ z_n)/∂(W a_n + b), the per-sample gradient is δ_n a_nᵀ,
so its squared norm is ‖δ_n‖² ‖a_n‖² for W and ‖δ_n‖² for b (Goodfellow 2015, "Efficient
per-example gradient computations").  One forward pass stores every layer's input; the C columns
of S go back through the network, one reverse pass each, to the *layer outputs* only (no weight
gradients).  Cost ≈ C backward passes per chunk, against the
50 Hessian-vector products (each a double backward) of a Hutchinson estimate — and no variance.

:func:`ggn_trace` computes tr(GGN) by the same passes for any supported *structure* (smooth
activations such as Tanh included); :func:`exact_trace` is tr(H) and refuses networks whose
activations are not piecewise linear, for which tr(GGN) ≠ tr(H).  The network runs layer by
layer from the flat point θ; the user's module is only read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.core import Objective
from topograph.core.work import Work
from topograph.curvature.results import TraceResult
from topograph.errors import UsageError

#: parameter-free elementwise activations that are piecewise linear (tr H = tr GGN)
PIECEWISE_LINEAR = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.Identity)
#: smooth activations :func:`ggn_trace` also runs through (tr GGN only)
SMOOTH = (nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Softplus, nn.ELU)
#: layers that are the identity in eval mode (the Objective evaluates in eval mode)
EVAL_IDENTITY = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)


@dataclass
class ExactTraceResult(TraceResult):
    """A deterministic trace: a :class:`TraceResult` with ``std_error`` 0, no probe ``samples``,
    ``work`` without Hessian-vector products and ``exact_part`` = ``estimate``.

    Attributes (beyond :class:`TraceResult`)
    ----------------------------------------
    backward_passes:
        vector-Jacobian products through the network: C outputs × number of data chunks.
    per_param:
        the trace of each parameter tensor's diagonal Hessian block (name → value); they sum to
        ``estimate``.
    """

    backward_passes: int = 0
    per_param: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- support checks
def _leaf_layers(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """(parameter-name prefix, layer) of a plain — possibly nested — ``nn.Sequential``, every
    layer that its forward runs (a repeated layer twice, unlike ``named_children``)."""
    for name, child in module._modules.items():
        if type(child).forward is nn.Sequential.forward and isinstance(child, nn.Sequential):
            yield from _leaf_layers(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}.", child


def _has_hooks(m: nn.Module) -> bool:
    return any(getattr(m, h, None) for h in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def _structure_problem(module: Any, *, smooth_ok: bool) -> str | None:
    """Why the module cannot be traced this way, or None."""
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return (f"the model must be a plain nn.Sequential (its forward not overridden); "
                f"got {type(module).__name__}")
    allowed = PIECEWISE_LINEAR + EVAL_IDENTITY + (nn.Linear, nn.Flatten) + (SMOOTH if smooth_ok else ())
    seen: set[int] = set()
    linears = 0
    for prefix, layer in _leaf_layers(module):
        if type(layer) in SMOOTH and not smooth_ok:
            return (f"layer {prefix[:-1]} ({type(layer).__name__}) is not piecewise linear, so "
                    "tr(H) ≠ tr(GGN); use a Hutchinson/Hutch++ estimate")
        if type(layer) not in allowed:
            names = ", ".join(c.__name__ for c in allowed)
            return f"layer {prefix[:-1]} is a {type(layer).__name__}; supported layers: {names}"
        if id(layer) in seen and isinstance(layer, nn.Linear):
            return f"layer {prefix[:-1]} is used twice (shared weights)"
        seen.add(id(layer))
        linears += isinstance(layer, nn.Linear)
        if _has_hooks(layer):
            return f"layer {prefix[:-1]} has hooks registered; remove them"
    if _has_hooks(module):
        return "the model has hooks registered; remove them"
    if linears == 0:
        return "the model has no nn.Linear layer"
    return None


def _loss_kind(loss_fn: Any) -> tuple[str | None, str]:
    """('ce' | 'mse' | None, why not)."""
    if loss_fn is F.cross_entropy:
        return "ce", ""
    if loss_fn is F.mse_loss:
        return "mse", ""
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        if loss_fn.reduction != "mean" or loss_fn.weight is not None:
            return None, "nn.CrossEntropyLoss must have reduction='mean' and weight=None"
        return "ce", ""
    if isinstance(loss_fn, nn.MSELoss):
        if loss_fn.reduction != "mean":
            return None, "nn.MSELoss must have reduction='mean'"
        return "mse", ""
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    return None, (f"loss_fn {name} is not supported; use torch.nn.functional.cross_entropy, "
                  "nn.CrossEntropyLoss(), torch.nn.functional.mse_loss or nn.MSELoss() (mean reduction)")


def _check(objective: Objective, *, smooth_ok: bool) -> str | None:
    if not isinstance(objective, Objective):
        return "the objective must be a topograph.core.Objective (a network, not a plain function)"
    problem = _structure_problem(objective.module, smooth_ok=smooth_ok)
    if problem is not None:
        return problem
    kind, why = _loss_kind(objective.loss_fn)
    return why if kind is None else None


def supports_exact_trace(objective: Objective) -> tuple[bool, str]:
    """``(True, "")`` when :func:`exact_trace` applies to ``objective``, else ``(False, why)``.

    Checks the model (a plain ``nn.Sequential`` of Linear layers and piecewise-linear
    activations) and the loss (mean cross-entropy or mean squared error); the shapes of the data
    are checked when the trace is computed.
    """
    problem = _check(objective, smooth_ok=False)
    return (problem is None, problem or "")


# ---------------------------------------------------------------------------- the computation
def _forward(module: nn.Module, params: dict[str, Tensor], x: Tensor, wanted: set[str]):
    """Run the Sequential layer by layer at ``params``; return the output and, for every Linear
    layer with a wanted parameter, (prefix, input a, output z) — z requiring grad."""
    h = x
    records = []
    for prefix, layer in _leaf_layers(module):
        if isinstance(layer, nn.Linear):
            w = params.get(prefix + "weight", layer.weight).detach()
            b = layer.bias if layer.bias is None else params.get(prefix + "bias", layer.bias).detach()
            if h.ndim != 2:
                raise UsageError(f"layer {prefix[:-1]} (nn.Linear) gets input of shape "
                                 f"{tuple(h.shape)}; exact_trace needs (N, features) — add nn.Flatten")
            a = h
            h = F.linear(h, w, b)
            if not h.requires_grad:
                h.requires_grad_(True)
            if any(n in wanted for n in (prefix + "weight", prefix + "bias")):
                records.append((prefix, a, h))
        elif isinstance(layer, EVAL_IDENTITY) or type(layer) is nn.Identity:
            continue
        else:  # activations and Flatten: parameter-free; in-place ones run on a copy
            h = layer(h.clone() if getattr(layer, "inplace", False) else h)
    return h, records


def _loss_root(kind: str, out: Tensor, y: Tensor, ignore_index: int | None) -> Tensor:
    """The C columns of S_n (H_ℓ,n = S_n S_nᵀ), stacked as (C, N, *out.shape[1:])."""
    if kind == "ce":
        if out.ndim != 2:
            raise UsageError(f"exact_trace with cross-entropy needs logits of shape (N, C); got "
                             f"{tuple(out.shape)}")
        if y.is_floating_point() or y.shape != out.shape[:1]:
            raise UsageError("exact_trace with cross-entropy needs integer class targets of shape "
                             f"(N,); got {y.dtype} {tuple(y.shape)}")
        if ignore_index is not None and bool((y == ignore_index).any()):
            raise UsageError(f"targets contain ignore_index={ignore_index}; exact_trace needs every "
                             "sample counted")
        p = torch.softmax(out.detach(), dim=1)
        c = p.shape[1]
        eye = torch.eye(c, dtype=p.dtype, device=p.device)
        # column j of S_n is √p_j (e_j − p): cols[j, n] = √p[n, j] (e_j − p[n])
        return p.sqrt().T.unsqueeze(-1) * (eye.unsqueeze(1) - p.unsqueeze(0))
    if y.shape != out.shape:
        raise UsageError(f"exact_trace with mse_loss needs targets shaped like the outputs "
                         f"{tuple(out.shape)}; got {tuple(y.shape)}")
    n, d = out.shape[0], out[0].numel()
    eye = torch.eye(d, dtype=out.dtype, device=out.device) * (2.0 / d) ** 0.5
    return eye.unsqueeze(1).expand(d, n, d).reshape(d, *out.shape)


def _trace(objective: Objective, theta: Any, *, split: str, batch: Any, params: Sequence[str] | None,
           smooth_ok: bool, method: str) -> ExactTraceResult:
    problem = _check(objective, smooth_ok=smooth_ok)
    if problem is not None:
        raise UsageError(f"{method}: {problem}")
    start = time.perf_counter()
    spec = objective.spec
    if params is not None:
        if isinstance(params, str):
            params = [params]
        for name in params:
            spec.index(name)  # one-line UsageError for an unknown name
    wanted = set(spec.names if params is None else params)
    flat = objective.flat_params() if theta is None else spec.as_flat(theta).detach().to(objective.device)
    point = spec.unflatten(flat.detach())
    kind, _ = _loss_kind(objective.loss_fn)
    ignore_index = getattr(objective.loss_fn, "ignore_index", -100) if kind == "ce" else None
    sums = {name: torch.zeros((), dtype=torch.float64, device=objective.device) for name in wanted}
    n_total, passes, chunks = 0, 0, 0
    with objective.mode(), torch.enable_grad():
        for x, y in objective.chunks(split, batch):
            out, records = _forward(objective.module, point, x, wanted)
            cols = _loss_root(kind, out, y, ignore_index).to(out.dtype)
            outputs = [z for _, _, z in records]
            # Σ_c ‖δ_{n,c}‖² per sample and layer: one backward per column of S, to the layer
            # outputs only (a loop: faster than is_grads_batched's vmap, which also pays ~0.4 s
            # of set-up on its first call)
            sqs = [torch.zeros(x.shape[0], dtype=torch.float64, device=out.device) for _ in records]
            for j, col in enumerate(cols):
                deltas = torch.autograd.grad(out, outputs, grad_outputs=col,
                                             retain_graph=j < cols.shape[0] - 1)
                for sq, delta in zip(sqs, deltas):
                    sq += delta.detach().double().pow(2).flatten(1).sum(dim=1)
            for (prefix, a, _), sq in zip(records, sqs):
                if prefix + "weight" in wanted:
                    sums[prefix + "weight"] += (sq * a.detach().double().pow(2).sum(dim=1)).sum()
                if prefix + "bias" in wanted:
                    sums[prefix + "bias"] += sq.sum()
            n_total += x.shape[0]
            passes += cols.shape[0]
            chunks += 1
    if n_total == 0:
        raise UsageError(f"split {split!r} has no samples")
    work = Work(forward_passes=1, backward_passes=passes // max(chunks, 1))
    objective.work.add(**work.as_dict())
    per_param = {name: float(sums[name]) / n_total for name in spec.names if name in wanted}
    total = sum(per_param.values())
    return ExactTraceResult(
        estimate=total, std_error=0.0, samples=torch.zeros(0, dtype=torch.float64), work=work,
        seconds=time.perf_counter() - start, method=method, exact_part=total,
        backward_passes=passes, per_param=per_param,
    )


def exact_trace(
    objective: Objective,
    theta: Any = None,
    *,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    params: Sequence[str] | None = None,
) -> ExactTraceResult:
    """tr ∇²L(θ), exactly, for a piecewise-linear network (see the module docstring).

    ``objective`` is a :class:`topograph.core.Objective` whose module is a plain
    ``nn.Sequential`` of Linear layers and piecewise-linear activations (ReLU, LeakyReLU,
    ReLU6, Hardtanh, Identity, Flatten, Dropout — eval mode) and whose loss is mean
    cross-entropy or mean squared error; anything else raises a one-line :class:`UsageError`
    (:func:`supports_exact_trace` tells beforehand).  The data are a split (in the objective's
    chunks) or one ``batch``; ``params`` restricts to those tensors' diagonal Hessian block.
    Cost: one forward and C backward passes per chunk (C = number of outputs); no
    Hessian-vector products.  Result: ``estimate`` (``std_error`` 0), ``per_param``,
    ``backward_passes``; ``method="exact-ggn"``.
    """
    return _trace(objective, theta, split=split, batch=batch, params=params, smooth_ok=False,
                  method="exact-ggn")


def ggn_trace(
    objective: Objective,
    theta: Any = None,
    *,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    params: Sequence[str] | None = None,
) -> ExactTraceResult:
    """tr(GGN) = (1/N) Σ_n tr(J_nᵀ H_ℓ,n J_n), exactly, by the passes of :func:`exact_trace`.

    Also accepts smooth activations (Tanh, Sigmoid, GELU, SiLU, Softplus, ELU), for which it is
    the Gauss–Newton trace and *not* tr(H).  ``method="ggn"``.
    """
    return _trace(objective, theta, split=split, batch=batch, params=params, smooth_ok=True,
                  method="ggn")


__all__ = ["ExactTraceResult", "exact_trace", "ggn_trace", "supports_exact_trace"]
