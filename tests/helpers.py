"""Plain helpers shared by the suite's tests (``from tests.helpers import ...``): tiny models and
data, dense references and where the real data sets lie.  Fixtures built on them are in
``conftest.py``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.core import ParamSpec

ROOT = Path(__file__).resolve().parents[1]
#: the project's shared data folder beside the repository (Fashion-MNIST and MNIST copies)
SHARED_DATA = ROOT.parent / "shared" / "data"


def data_root() -> Path | None:
    """Where the real data sets lie: ``$TOPOGRAPH_DATA_DIR``, else ``../shared/data``, else None."""
    env = os.environ.get("TOPOGRAPH_DATA_DIR")
    if env:
        return Path(env).resolve()
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def classification_data(n: int = 37, shape: tuple[int, ...] = (5,), classes: int = 3,
                        seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` Gaussian inputs of ``shape`` and uniform integer labels in ``[0, classes)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def tiny_mlp(sizes: tuple[int, ...] = (5, 4, 3), *, seed: int = 0,
             activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """``Flatten`` then ``Linear``/activation layers of ``sizes`` (a first-layer-shortcut model)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def tiny_conv_bn(*, channels: int = 1, classes: int = 3, seed: int = 0, batchnorm: bool = True) -> nn.Module:
    """A conv net with BatchNorm and a skip connection on 6×6 inputs (not a plain Sequential)."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(channels, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.head = nn.Linear(4, classes)

        def forward(self, x: Tensor) -> Tensor:
            h = torch.relu(self.bn(self.conv(x)))
            h = h + torch.relu(self.conv2(h))
            return self.head(h.mean((2, 3)))

    torch.manual_seed(seed)
    net = Net()
    if batchnorm:  # running statistics away from the defaults, so eval-mode BN is not the identity
        with torch.no_grad():
            net.bn.running_mean.uniform_(-0.5, 0.5)
            net.bn.running_var.uniform_(0.5, 2.0)
    return net


def dense_hessian(loss_of_flat: Callable[[Tensor], Tensor], flat: Tensor) -> Tensor:
    """The dense Hessian of a scalar function of a flat vector (``torch.autograd.functional``)."""
    return torch.autograd.functional.hessian(loss_of_flat, flat.detach())


def cross_entropy_of_flat(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """θ ↦ cross-entropy of ``model`` at the flat trainable parameters θ (eval mode)."""
    spec = ParamSpec.from_module(model)
    buffers = dict(model.named_buffers())

    def f(flat: Tensor) -> Tensor:
        return F.cross_entropy(torch.func.functional_call(model, (spec.unflatten(flat), buffers), (x,)), y)

    return f
