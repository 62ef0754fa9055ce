"""VGG-9 in the layout of Li, Xu, Taylor, Studer & Goldstein (2018), with BatchNorm.

Li et al. ("Visualizing the loss landscape of neural nets", NeurIPS 2018) map a 9-layer VGG on
CIFAR-10; its layout, in their code (``cifar10/models/vgg.py`` of
github.com/tomgoldstein/loss-landscape), is seven 3×3 convolutions (padding 1, with bias),
each followed by BatchNorm and ReLU, with 2×2 max-pooling (stride 2, ceil mode) after the
2nd, 4th and 7th::

    64, 64, M, 128, 128, M, 256, 256, 256, M

then a fully connected layer from the flattened 256×4×4 maps to 256 units with BatchNorm and
ReLU, and a linear classifier 256 → 10.  Seed 002 (rolling ball, Table 1) trains a VGG-9 on
MNIST and CIFAR-10/100; we use this layout for it.  With ceil-mode pooling a 28×28 input also
ends in 4×4 maps (28 → 14 → 7 → 4), so MNIST and CIFAR-10 models differ only in the first
convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from topograph.errors import UsageError
from topograph.models.common import as_images, positive_int

#: Li et al.'s VGG-9 configuration: filters per convolution, "M" for a 2×2 max-pool
VGG9 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")


class VGG(nn.Module):
    """A VGG with BatchNorm in Li et al.'s layout: conv blocks, one FC-BN-ReLU layer, a classifier.

    Parameters
    ----------
    config:
        filters per 3×3 convolution and ``"M"`` for max-pooling; :data:`VGG9` by default.
    in_channels, image_size:
        3 and 32 for CIFAR-10, 1 and 28 for MNIST.
    num_classes:
        outputs of the classifier.

    Parameter count, with C input channels, convolutions c_1 … c_m (c_0 = C), final map side S
    (``image_size`` halved, rounded up, at each pooling) and k classes::

        Σ_i (9·c_{i-1}·c_i + c_i + 2·c_i)        conv weights + biases + BN
        + c_m·S²·c_m + c_m + 2·c_m               FC + bias + BN
        + c_m·k + k                              classifier

    VGG-9: 2,789,706 parameters for 32×32×3 and 10 classes, 2,788,554 for 28×28×1.
    """

    def __init__(self, config: Sequence[int | str] = VGG9, *, in_channels: int = 3,
                 num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__()
        in_channels = positive_int("VGG", "in_channels", in_channels)
        num_classes = positive_int("VGG", "num_classes", num_classes)
        image_size = positive_int("VGG", "image_size", image_size)
        layers: list[nn.Module] = []
        channels, side, convolutions = in_channels, image_size, 0
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                side = math.ceil(side / 2)
            else:
                width = positive_int("VGG", "config", item)
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                channels, convolutions = width, convolutions + 1
        if convolutions == 0:
            raise UsageError(f"VGG: config must hold at least one convolution, got {list(config)}")
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * side * side, channels), nn.BatchNorm1d(channels), nn.ReLU(),
        )
        self.classifier = nn.Linear(channels, num_classes)
        self.in_channels = in_channels
        self.image_size = image_size

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.fc(self.features(as_images(x, self.in_channels, self.image_size))))


def vgg9(**kwargs) -> VGG:
    """VGG-9 of Li et al. 2018 (and seed 002): 2,789,706 parameters for 32×32×3, 10 classes."""
    return VGG(VGG9, **kwargs)


__all__ = ["VGG", "VGG9", "vgg9"]
