"""Looking inside a user's module without touching it: structural copies and activation sizes.

topograph never modifies the ``nn.Module`` it is given.  When it needs to change how a module
runs — replace its first layer by precomputed pre-activations (:mod:`topograph.core.shortcut`),
or watch which layers run in which order — it works on a :func:`structural_copy`: new module
objects with their own child, parameter and buffer tables that hold the *same* tensors.  Hooks
and replaced children then live on the copy only, and ``torch.func.functional_call`` on the
copy swaps tensors in the copy's tables.

:func:`activations_per_sample` counts the floats one sample's forward pass produces (the
outputs of every leaf module), which sizes evaluation chunks (:func:`chunk_size_for`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

#: floats of activations (summed over every layer's output) one evaluation chunk may hold: 2²⁵.
#: Measured on 2 CPU cores (benchmarks/README.md): a conv net's compute per sample is flat from
#: chunks of 32 to 256 samples, while each chunk's call costs ~0.3 ms of Python and dispatch,
#: so the largest chunk whose layers still work in cache wins — cnn-small (88k floats per sample)
#: gets 256, ResNet-20 (463k) 64, where 2²² gave both 32 and a 7×7 / 5×5 surface took 20 % / 8 %
#: longer; whole splits of 8,192 samples ran ≈ 2× slower.  An MLP is flat over a wide range.
ACTIVATION_BUDGET = 1 << 25


def structural_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s tree whose modules are new objects sharing the original's tensors.

    Every module is shallow-copied with fresh ``_modules``, ``_parameters``, ``_buffers`` and
    hook tables, so replacing a child, registering a hook or reparametrising the copy leaves
    the original exactly as it was.  Tensors are not copied.
    """
    memo: dict[int, nn.Module] = {}

    def clone(m: nn.Module) -> nn.Module:
        if id(m) in memo:  # a module used twice stays one module
            return memo[id(m)]
        new = copy.copy(m)
        memo[id(m)] = new
        new.__dict__["_parameters"] = dict(m._parameters)
        new.__dict__["_buffers"] = dict(m._buffers)
        for table in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs",
                      "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called"):
            if table in m.__dict__:
                new.__dict__[table] = type(m.__dict__[table])(m.__dict__[table])
        new.__dict__["_modules"] = {k: (None if c is None else clone(c)) for k, c in m._modules.items()}
        return new

    return clone(module)


def submodule_parent(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The parent module of the dotted submodule ``name`` and the child's last name."""
    *path, last = name.split(".")
    parent = root
    for part in path:
        parent = parent._modules[part]
    return parent, last


def direct_parameters(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of every submodule that holds parameters of its own."""
    for name, m in module.named_modules():
        if m._parameters and any(p is not None for p in m._parameters.values()):
            yield name, m


@torch.no_grad()
def activations_per_sample(module: nn.Module, example: Tensor) -> int:
    """Floats produced by one sample's forward pass: the outputs of every leaf module, summed.

    Runs a :func:`structural_copy` in eval mode on ``example[:1]`` with forward hooks on the
    copy's leaves; the user's module, its flags and its buffers are untouched.
    """
    view = structural_copy(module)
    counted = [0]

    def count(_module, _inputs, output) -> None:
        for out in (output if isinstance(output, (tuple, list)) else (output,)):
            if isinstance(out, Tensor):
                counted[0] += out.numel()

    for m in view.modules():
        if not m._modules:
            m.register_forward_hook(count)
    view.eval()
    view(example[:1])
    return max(counted[0], 1)


def chunk_size_for(per_sample: int, *, budget: int = ACTIVATION_BUDGET, low: int = 32,
                   high: int = 8192) -> int:
    """Samples per chunk: the largest power of two c with c · ``per_sample`` ≤ ``budget``,
    clipped to ``[low, high]``."""
    fit = max(int(budget) // max(int(per_sample), 1), 1)
    return int(min(max(1 << (fit.bit_length() - 1), low), high))


def has_convolutions(module: nn.Module) -> bool:
    """Whether ``module`` holds a 2-D convolution (which prefers the channels-last layout on CPUs)."""
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def batchnorm_layers(module: nn.Module) -> list[nn.Module]:
    """Every BatchNorm layer of ``module`` (1-D, 2-D, 3-D, sync)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


__all__ = ["ACTIVATION_BUDGET", "activations_per_sample", "batchnorm_layers", "chunk_size_for",
           "direct_parameters", "has_convolutions", "structural_copy", "submodule_parent"]
