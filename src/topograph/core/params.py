"""Parameter points: the exact, cheap conversion between a parameter dict and one flat vector.

Every feature of topograph addresses a point θ of parameter space either as a mapping
``name -> tensor`` (what :func:`torch.func.functional_call` takes) or as one flat vector
``θ ∈ R^P`` (what linear algebra, directions, paths and optimizers want).  A :class:`ParamSpec`
records the names, shapes and offsets once; :meth:`ParamSpec.flatten` is one ``torch.cat`` and
:meth:`ParamSpec.unflatten` returns *views* into the flat vector (no copy), so gradients taken
with respect to the flat vector flow through the views.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from topograph.errors import UsageError

ParamDict = dict[str, Tensor]


@dataclass(frozen=True)
class ParamSpec:
    """Layout of a set of named tensors inside one flat vector.

    Attributes
    ----------
    names, shapes, numels, offsets:
        One entry per tensor, in flattening order (the module's ``named_parameters`` order).
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]
    offsets: tuple[int, ...]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Tensor]) -> ParamSpec:
        names = tuple(tensors)
        shapes = tuple(torch.Size(tensors[n].shape) for n in names)
        numels = tuple(math.prod(s) for s in shapes)
        offsets, off = [], 0
        for k in numels:
            offsets.append(off)
            off += k
        return cls(names, shapes, numels, tuple(offsets))

    @classmethod
    def from_module(cls, module: nn.Module, *, trainable_only: bool = True) -> ParamSpec:
        """Spec of ``module.named_parameters()`` (only ``requires_grad`` ones by default)."""
        return cls.from_tensors(named_parameters(module, trainable_only=trainable_only))

    # ------------------------------------------------------------------ sizes
    @property
    def size(self) -> int:
        """P, the length of the flat vector."""
        return self.offsets[-1] + self.numels[-1] if self.names else 0

    def __len__(self) -> int:
        return len(self.names)

    def slice_of(self, name: str) -> slice:
        """The slice of the flat vector that holds tensor ``name``."""
        i = self.index(name)
        return slice(self.offsets[i], self.offsets[i] + self.numels[i])

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UsageError(
                f"parameter {name!r} is not in this model; known: {', '.join(self.names)}"
            ) from None

    def items(self) -> Iterator[tuple[str, torch.Size, slice]]:
        for n, s, o, k in zip(self.names, self.shapes, self.offsets, self.numels):
            yield n, s, slice(o, o + k)

    # ------------------------------------------------------------------ conversion
    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """Concatenate ``params`` (in spec order) into one flat vector (a copy)."""
        self.check(params)
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def unflatten(self, flat: Tensor) -> ParamDict:
        """Views of ``flat`` shaped like the spec's tensors (no copy; autograd flows through).

        ``flat`` may carry leading batch dimensions: ``(..., P) -> {name: (..., *shape)}``.
        """
        if flat.shape[-1] != self.size:
            raise UsageError(
                f"flat parameter vector has length {flat.shape[-1]}, the model has {self.size}"
            )
        lead = flat.shape[:-1]
        parts = torch.split(flat, self.numels, dim=-1)
        return {n: p.view(*lead, *s) for n, p, s in zip(self.names, parts, self.shapes)}

    def as_flat(self, theta: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Accept either representation and return the flat vector."""
        if isinstance(theta, Tensor):
            if theta.shape[-1] != self.size:
                raise UsageError(
                    f"flat parameter vector has length {theta.shape[-1]}, the model has {self.size}"
                )
            return theta
        return self.flatten(theta)

    def as_dict(self, theta: Tensor | Mapping[str, Tensor]) -> ParamDict:
        """Accept either representation and return the name -> tensor mapping."""
        if isinstance(theta, Tensor):
            return self.unflatten(theta)
        self.check(theta)
        return dict(theta)

    def check(self, params: Mapping[str, Tensor]) -> None:
        """Raise a one-line :class:`UsageError` if ``params`` does not match the spec."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise UsageError(f"parameter point lacks {', '.join(missing)}")
        for n, s in zip(self.names, self.shapes):
            if tuple(params[n].shape) != tuple(s):
                raise UsageError(
                    f"parameter {n!r} has shape {tuple(params[n].shape)}, the model's is {tuple(s)}"
                )

    def zeros(self, *, dtype=None, device=None) -> Tensor:
        return torch.zeros(self.size, dtype=dtype, device=device)

    def restrict(self, names: list[str] | tuple[str, ...]) -> ParamSpec:
        """The spec of a subset of the tensors (offsets recomputed for the sub-vector)."""
        for n in names:
            self.index(n)
        keep = [n for n in self.names if n in set(names)]
        return ParamSpec.from_tensors(
            {n: torch.empty(self.shapes[self.names.index(n)], device="meta") for n in keep}
        )


def named_parameters(module: nn.Module, *, trainable_only: bool = True) -> ParamDict:
    """``dict(module.named_parameters())``, skipping frozen parameters by default."""
    return {
        n: p for n, p in module.named_parameters() if p.requires_grad or not trainable_only
    }


def filter_norms(spec: ParamSpec, flat: Tensor) -> Tensor:
    """Per-filter Euclidean norms, broadcast back to a flat vector.

    A *filter* (Li et al. 2018) is one slice along dim 0 of a tensor with ``dim >= 2``: one
    output filter of a convolution (C_in×k×k) or one row of a linear layer's weight.  For 1-D
    tensors (biases, BatchNorm affine) each entry is its own filter.  Returns ``n`` with
    ``n[i] = ‖w_f‖`` for the filter ``f`` that holds entry ``i``.
    """
    out = torch.empty_like(flat)
    for _, shape, sl in spec.items():
        block = flat[..., sl]
        if len(shape) >= 2:
            rows = block.reshape(*flat.shape[:-1], shape[0], -1)
            norms = rows.norm(dim=-1, keepdim=True).expand_as(rows)
            out[..., sl] = norms.reshape(block.shape)
        else:
            out[..., sl] = block.abs()
    return out
