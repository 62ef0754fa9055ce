"""CIFAR ResNets (He, Zhang, Ren & Sun 2016, §4.2): ResNet-20/56/110, ResNet-8 and a ResNet-6.

The CIFAR family of He et al. (2016, "Deep residual learning for image recognition", §4.2):
a 3×3 convolution with 16 filters, then three stages of ``n`` basic blocks with 16, 32 and 64
filters on maps of 32×32, 16×16 and 8×8, global average pooling and a fully connected layer —
``6n + 2`` weighted layers.  A basic block is

    y = ReLU( BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x) ),

its first convolution with stride 2 where a stage begins (stages 2 and 3).  Convolutions carry
no bias (BatchNorm follows each).  The shortcut where the shape changes is

``shortcut="A"`` (default)
    He et al.'s option A, the one of their CIFAR experiments and of the published parameter
    counts: the identity with stride-2 subsampling ``x[:, :, ::2, ::2]`` and zero channels
    appended — no parameters;
``shortcut="B"``
    option B, a projection: 1×1 convolution with stride 2 and BatchNorm (the layout of
    Li et al. 2018's ``cifar10/models/resnet.py`` in github.com/tomgoldstein/loss-landscape,
    whose maps of ResNet-20/56/110 use it: 2,752 parameters more at widths 16-32-64).

Every other shortcut is the identity.  Published sizes (He et al., Table 6): ResNet-20 0.27M,
ResNet-56 0.85M, ResNet-110 1.7M parameters; with option A these models have exactly
269,722, 853,018 and 1,727,962 parameters (10 classes, 3 input channels).

ResNet-8 is ``n = 1``.  "ResNet-6" (seed 002's MNIST model, Table 1 of the rolling-ball paper)
is not defined by that paper nor by He et al. (``6n + 2`` never equals 6); **our reading** is
the same family with one stage fewer: two stages (16 and 32 filters) of one block each —
1 + 2·2 + 1 = 6 weighted layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from topograph.errors import UsageError
from topograph.models.common import as_images, positive_int

SHORTCUTS = ("A", "B")


class ShortcutA(nn.Module):
    """He et al.'s option A: subsample by ``stride`` and append zero channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise UsageError(f"ShortcutA: cannot shrink {in_channels} channels to {out_channels}")
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, then ReLU (He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A CIFAR ResNet: stem, stages of basic blocks, global average pooling, linear classifier.

    Parameters
    ----------
    blocks:
        basic blocks per stage, ``n`` (depth ``6n + 2`` with three stages).
    widths:
        filters per stage; ``(16, 32, 64)`` is He et al.'s CIFAR family, ``(16, 32)`` our
        ResNet-6.  Each stage after the first halves the map size.
    shortcut:
        ``"A"`` (parameter-free, default) or ``"B"`` (1×1 projection); see the module docstring.
    in_channels, image_size:
        3 and 32 for CIFAR-10, 1 and 28 for MNIST; any size works (global pooling), and
        ``image_size`` is only needed to restore flattened inputs ``(N, C·H·W)``.
    num_classes:
        outputs of the classifier.

    Parameter count (option A), with C input channels, widths w_1 … w_m, n blocks, k classes::

        9·C·w_1 + 2·w_1                                   stem conv + BN
        + Σ_s [ 9·w_{s-1}·w_s + 9·(2n − 1)·w_s² + 4n·w_s ] blocks (w_0 = w_1)
        + w_m·k + k                                       classifier
    """

    def __init__(self, blocks: int, *, widths: Sequence[int] = (16, 32, 64), shortcut: str = "A",
                 in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__()
        blocks = positive_int("CifarResNet", "blocks", blocks)
        in_channels = positive_int("CifarResNet", "in_channels", in_channels)
        num_classes = positive_int("CifarResNet", "num_classes", num_classes)
        image_size = positive_int("CifarResNet", "image_size", image_size)
        widths = tuple(positive_int("CifarResNet", "widths", w) for w in widths)
        if not widths:
            raise UsageError("CifarResNet: widths must name at least one stage")
        if shortcut not in SHORTCUTS:
            raise UsageError(f"CifarResNet: shortcut must be 'A' (zero-padding identity) or 'B' "
                             f"(1×1 projection), got {shortcut!r}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        previous = widths[0]
        for index, width in enumerate(widths):
            layers = []
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                layers.append(BasicBlock(previous, width, stride, shortcut))
                previous = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(widths[-1], num_classes)
        self.in_channels = in_channels
        self.image_size = image_size
        self.depth = 2 * blocks * len(widths) + 2

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(as_images(x, self.in_channels, self.image_size))))
        out = self.stages(out)
        return self.linear(out.mean(dim=(2, 3)))


def resnet6(**kwargs) -> CifarResNet:
    """ResNet-6, our reading of seed 002's model: two stages (16, 32) of one block each.

    19,418 parameters for 32×32×3 and 10 classes (option A), 19,130 for 28×28×1.
    """
    return CifarResNet(1, widths=(16, 32), **kwargs)


def resnet8(**kwargs) -> CifarResNet:
    """ResNet-8 (6n + 2, n = 1; seed 002): 75,290 parameters for 32×32×3 and 10 classes."""
    return CifarResNet(1, **kwargs)


def resnet20(**kwargs) -> CifarResNet:
    """ResNet-20 (n = 3; He et al. 0.27M, mapped by Li et al.): 269,722 parameters (option A)."""
    return CifarResNet(3, **kwargs)


def resnet56(**kwargs) -> CifarResNet:
    """ResNet-56 (n = 9; He et al. 0.85M, mapped by Li et al.): 853,018 parameters (option A)."""
    return CifarResNet(9, **kwargs)


def resnet110(**kwargs) -> CifarResNet:
    """ResNet-110 (n = 18; He et al. 1.7M, mapped by Li et al.): 1,727,962 parameters (option A)."""
    return CifarResNet(18, **kwargs)


__all__ = [
    "BasicBlock", "CifarResNet", "SHORTCUTS", "ShortcutA", "resnet110", "resnet20", "resnet56",
    "resnet6", "resnet8",
]
