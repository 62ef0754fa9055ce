"""BatchNorm at a parameter point: one policy vocabulary for the whole package.

A point θ of parameter space does not fix a BatchNorm network's function: the normalisation
statistics are buffers, not parameters.  Every feature that evaluates a model (the
:class:`~topograph.core.Objective`, and through it surfaces, curvature, paths and the
optimizers' probes) names its choice with ``batchnorm=``:

``"eval"`` (default)
    the running statistics stored in the module, the same at every point; dropout off.  Li et
    al. 2018's convention for loss surfaces; deterministic, and a point's loss does not depend
    on how the data are chunked.
``"batch"``
    each evaluated batch (each data chunk of a full-split evaluation) is normalised with its own
    mean and variance, as in training; the stored running statistics are not changed (the
    layers work on copies).  Every other layer stays in eval mode.
``"recompute"``
    at every point, the running statistics are re-estimated on the training split at that
    point — the exact average over all samples (Garipov et al. 2018's ``update_bn``,
    "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs") — and the point is then
    evaluated as with ``"eval"``.  What paths between BatchNorm networks need: a point half way
    between two solutions belongs to neither's statistics.  Costs one extra forward pass over
    the training split per point.

For a model without BatchNorm the three are the same function.  :func:`freeze_bn_stats` is the
optimizers' tool for probes in train mode that must leave no trace in the running statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from topograph.errors import UsageError

BatchNormPolicy = Literal["eval", "batch", "recompute"]
BATCHNORM_POLICIES: tuple[str, ...] = ("eval", "batch", "recompute")


def check_policy(batchnorm: str, *, argument: str = "batchnorm") -> str:
    """``batchnorm`` if it is one of :data:`BATCHNORM_POLICIES`, else a one-line UsageError."""
    if batchnorm not in BATCHNORM_POLICIES:
        raise UsageError(f"{argument}={batchnorm!r} is not a BatchNorm policy; use one of "
                         f"{', '.join(map(repr, BATCHNORM_POLICIES))}")
    return batchnorm


def is_norm_with_statistics(m: nn.Module) -> bool:
    """A BatchNorm-like layer (``_NormBase``) that keeps running statistics."""
    return (isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
            and m.running_mean is not None)


@contextlib.contextmanager
def policy_flags(module: nn.Module, batchnorm: str) -> Iterator[None]:
    """Set ``module``'s train/eval flags as the policy asks (eval; BatchNorm in train mode for
    ``"batch"``) and restore every flag afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        if batchnorm == "batch":
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._NormBase):
                    m.train()
        yield
    finally:
        for m, f in flags:
            m.training = f


@torch.no_grad()
def recomputed_statistics(module: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                          chunks: Iterable[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """The buffers with every BatchNorm layer's running statistics re-estimated at ``params``.

    The statistics start from zero mean and unit variance and are updated over ``chunks`` with
    momentum n_c/(n_seen + n_c), i.e. the exact sample-weighted average over all chunks.  The
    module runs in train mode for BatchNorm only, through ``functional_call`` on copies of the
    buffers; nothing of the module is changed (its flags and momenta are restored).
    """
    bufs = {name: b.clone() for name, b in buffers.items()}
    layers = [(name, m) for name, m in module.named_modules() if is_norm_with_statistics(m)]
    if not layers:
        return bufs
    for name, _ in layers:
        pre = f"{name}." if name else ""
        bufs[pre + "running_mean"].zero_()
        bufs[pre + "running_var"].fill_(1.0)
        if pre + "num_batches_tracked" in bufs:
            bufs[pre + "num_batches_tracked"].zero_()
    momenta = [(m, m.momentum) for _, m in layers]
    seen = 0
    try:
        with policy_flags(module, "batch"):
            for x, _ in chunks:
                for _, m in layers:
                    m.momentum = x.shape[0] / (seen + x.shape[0])
                functional_call(module, (dict(params), bufs), (x,))
                seen += x.shape[0]
    finally:
        for m, value in momenta:
            m.momentum = value
    return bufs


def _running_stat_modules(modules: nn.Module | Iterable[nn.Module] | None) -> list[nn.Module]:
    if modules is None:
        return []
    roots = [modules] if isinstance(modules, nn.Module) else list(modules)
    found: list[nn.Module] = []
    for root in roots:
        if not isinstance(root, nn.Module):
            raise UsageError(f"modules must be an nn.Module or an iterable of them, got {type(root).__name__}")
        for m in root.modules():
            if is_norm_with_statistics(m) and all(m is not other for other in found):
                found.append(m)
    return found


@contextlib.contextmanager
def freeze_bn_stats(modules: nn.Module | Iterable[nn.Module] | None) -> Iterator[None]:
    """Keep BatchNorm (and other ``_NormBase``) running statistics unchanged inside the block.

    Snapshots ``running_mean``, ``running_var`` and ``num_batches_tracked`` of every norm
    layer with running statistics found in ``modules`` and restores them on exit, so the
    forward passes inside the block use batch statistics (in train mode) as usual but leave
    no trace.  Works for any ``momentum`` including ``None`` (cumulative average), unlike
    setting ``momentum=0``.

    >>> bn = nn.BatchNorm1d(3)
    >>> with freeze_bn_stats(bn):
    ...     _ = bn(torch.randn(8, 3))
    >>> bool((bn.running_mean == 0).all())
    True
    """
    layers = _running_stat_modules(modules)
    saved = [{name: buf.clone() for name, buf in m.named_buffers(recurse=False) if buf is not None}
             for m in layers]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(layers, saved):
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)


__all__ = ["BATCHNORM_POLICIES", "BatchNormPolicy", "check_policy", "freeze_bn_stats", "is_norm_with_statistics",
           "policy_flags", "recomputed_statistics"]
