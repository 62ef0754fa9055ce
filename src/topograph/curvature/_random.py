"""Seeded random probe vectors, drawn on the CPU (reproducible across devices) then moved."""

from __future__ import annotations

import torch
from torch import Tensor

from topograph.errors import UsageError

DISTRIBUTIONS = ("rademacher", "gaussian")


def generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def probes(n: int, count: int, *, gen: torch.Generator, dtype: torch.dtype, device: torch.device,
           distribution: str = "rademacher") -> Tensor:
    """``count`` probe vectors as the rows of a (count, n) tensor: E[z zᵀ] = I."""
    if distribution == "rademacher":
        z = torch.randint(0, 2, (count, n), generator=gen).to(torch.float64).mul_(2).sub_(1)
    elif distribution == "gaussian":
        z = torch.randn(count, n, generator=gen, dtype=torch.float64)
    else:
        raise UsageError(f"distribution={distribution!r}; use one of {', '.join(DISTRIBUTIONS)}")
    return z.to(dtype=dtype, device=device)
