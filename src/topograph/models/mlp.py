"""Fully connected networks: the generic :class:`MLP` and seed 001's :class:`FCP`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from topograph.errors import UsageError
from topograph.models.common import activation as make_activation
from topograph.models.common import positive_int


class MLP(nn.Sequential):
    """Fully connected network ``sizes[0] → … → sizes[-1]``; flattens its input.

    An activation follows every layer but the last.  ``activation`` is a module class
    (default ``nn.ReLU``) or a name (``"relu"``, ``"softplus"``, ``"tanh"``); ``bias=False``
    drops every bias.  Parameters: ``Σ_l sizes[l]·sizes[l+1]`` (+ ``Σ_l sizes[l+1]`` biases).
    """

    def __init__(self, sizes: Sequence[int], *, activation: str | type[nn.Module] = nn.ReLU,
                 bias: bool = True) -> None:
        if len(sizes) < 2 or any(isinstance(s, bool) or int(s) < 1 for s in sizes):
            raise UsageError(f"MLP sizes must be at least two positive integers, got {list(sizes)}")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(int(a), int(b), bias=bool(bias)))
            if i < len(sizes) - 2:
                layers.append(make_activation("MLP", activation) if isinstance(activation, str)
                              else activation())
        super().__init__(*layers)
        self.sizes = tuple(int(s) for s in sizes)


class FCP(MLP):
    """Seed 001's fully connected classifier 784 → 50 → 50 → 10 without biases.

    Source: Yu & Morozov, "Neural network optimization strategies and the topography of the
    loss landscape" (arXiv:2602.21276), model "FCP" on MNIST; layout of the authors' code
    (``NN_arch.py``).  The paper states ReLU activations, the authors' code uses softplus:
    ``activation="softplus"`` (default, the code) or ``"relu"`` (the paper).

    Parameters: ``D·50 + 50·50 + 50·k`` — 42,200 for 28×28×1 inputs and 10 classes (as the
    paper and the code give), 156,600 for 32×32×3.  Input ``(N, C, H, W)`` or ``(N, C·H·W)``.
    """

    def __init__(self, *, activation: str = "softplus", in_channels: int = 1, image_size: int = 28,
                 num_classes: int = 10) -> None:
        c = positive_int("FCP", "in_channels", in_channels)
        side = positive_int("FCP", "image_size", image_size)
        k = positive_int("FCP", "num_classes", num_classes)
        make_activation("FCP", activation)  # validate the name before building
        super().__init__([c * side * side, 50, 50, k], activation=activation, bias=False)


__all__ = ["FCP", "MLP"]
