"""Models by name.

=====================  =====================================================================
name                   model
=====================  =====================================================================
``mlp-cifar``          seed 003's MLP 3072-64-64-32-10 with ReLU (CIFAR-10, flattened 32×32×3)
``mlp-fmnist``         its 784-input twin 784-64-64-32-10 for 28×28 data
``mlp-784-128-64-10``  the benchmark MLP of ``benchmarks/`` (perf-baseline M1)
``mlp-digits``         a small MLP 64-32-10 for scikit-learn's 8×8 digits
``cnn-small``          Conv32-Pool-Conv64-Pool-FC128-Dropout0.3-FC10 (algorithms.md §2.7);
                       reaches ≥ 91 % on Fashion-MNIST test
=====================  =====================================================================

Any user ``nn.Module`` works through the library API; these names serve configs and the CLI.
Every model takes a batch of images ``(N, C, H, W)`` or already-flat vectors ``(N, D)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from topograph.errors import UsageError


class MLP(nn.Sequential):
    """Fully connected ReLU network ``sizes[0] → … → sizes[-1]``; flattens its input."""

    def __init__(self, sizes: Sequence[int], *, activation: type[nn.Module] = nn.ReLU) -> None:
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise UsageError(f"MLP sizes must be at least two positive integers, got {list(sizes)}")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(int(a), int(b)))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
        self.sizes = tuple(int(s) for s in sizes)


class SmallCNN(nn.Module):
    """Two conv blocks and a dropout MLP head (algorithms.md §2.7, used for seed 000).

    Input ``(N, C, H, W)`` with H = W = 28 by default (Fashion-MNIST).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )
        self.image_size = image_size
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:  # flat input: restore the image
            x = x.view(x.shape[0], self.in_channels, self.image_size, self.image_size)
        return self.head(self.features(x))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp-cifar": lambda **kw: MLP([3072, 64, 64, 32, kw.get("num_classes", 10)]),
    "mlp-fmnist": lambda **kw: MLP([784, 64, 64, 32, kw.get("num_classes", 10)]),
    "mlp-784-128-64-10": lambda **kw: MLP([784, 128, 64, kw.get("num_classes", 10)]),
    "mlp-784-256-128-64-10": lambda **kw: MLP([784, 256, 128, 64, kw.get("num_classes", 10)]),
    "mlp-digits": lambda **kw: MLP([64, 32, kw.get("num_classes", 10)]),
    "cnn-small": lambda **kw: SmallCNN(
        in_channels=kw.get("in_channels", 1), num_classes=kw.get("num_classes", 10),
        image_size=kw.get("image_size", 28), dropout=kw.get("dropout", 0.3)),
}


def build_model(name: str, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Instantiate a model by name; ``seed`` makes its initialisation reproducible."""
    if name not in MODELS:
        raise UsageError(f"model {name!r} is unknown; choose one of {', '.join(MODELS)}")
    if seed is None:
        return MODELS[name](**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return MODELS[name](**kwargs)


__all__ = ["MLP", "MODELS", "SmallCNN", "build_model"]
