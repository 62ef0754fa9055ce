"""Small convolutional networks: :class:`SmallCNN` (seed 000) and :class:`LeNet5` (seed 001)."""

from __future__ import annotations

from torch import Tensor, nn

from topograph.errors import UsageError
from topograph.models.common import activation as make_activation
from topograph.models.common import as_images, positive_int


class SmallCNN(nn.Module):
    """Two conv blocks and a dropout MLP head: the small CNN of seed 000's experiments.

    Conv 32@3×3 (padding 1) → ReLU → MaxPool 2 → Conv 64@3×3 → ReLU → MaxPool 2 → FC 128 →
    ReLU → Dropout → FC ``num_classes``.  Reaches ≥ 91 % test accuracy on Fashion-MNIST.

    Parameters: ``9·32·C + 32 + 9·32·64 + 64 + 64·(S/4)²·128 + 128 + 128·k + k`` — 421,642 for
    28×28×1 and 10 classes, 545,098 for 32×32×3.  Input ``(N, C, H, W)`` with H = W =
    ``image_size`` (28 by default), or the same images flattened.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 dropout: float = 0.3) -> None:
        super().__init__()
        in_channels = positive_int("SmallCNN", "in_channels", in_channels)
        image_size = positive_int("SmallCNN", "image_size", image_size)
        num_classes = positive_int("SmallCNN", "num_classes", num_classes)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise UsageError(f"SmallCNN: dropout must be a probability in [0, 1), got {dropout!r}")
        if image_size < 4:
            raise UsageError(f"SmallCNN: image_size must be at least 4 (two 2×2 poolings), got {image_size}")
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
        return self.head(self.features(as_images(x, self.in_channels, self.image_size)))


class LeNet5(nn.Module):
    """LeNet-5 in seed 001's layout (LeCun et al. 1998, as the topography paper trains it).

    Conv 6@5×5 (padding 2) → act → AvgPool 2 → Conv 16@5×5 → act → AvgPool 2 → FC 120 → act →
    FC 84 → act → FC ``num_classes``, with biases.  Source: Yu & Morozov, arXiv:2602.21276,
    model "LeNet" on MNIST, layout of the authors' code (``NN_arch.py``).  The paper states
    ReLU activations, the authors' code uses softplus: ``activation="softplus"`` (default,
    the code) or ``"relu"`` (the paper).  The padding of the first convolution makes a 28×28
    input behave like LeNet-5's original 32×32 one (5×5 maps before the classifier); the same
    layout on 32×32 inputs gives 6×6 maps.

    Parameters: 61,706 for 28×28×1 inputs and 10 classes (the paper's and the code's count);
    83,126 for 32×32×3.  Input ``(N, C, H, W)`` with H = W = ``image_size``, or flattened.
    """

    def __init__(self, *, activation: str = "softplus", in_channels: int = 1, image_size: int = 28,
                 num_classes: int = 10) -> None:
        super().__init__()
        in_channels = positive_int("LeNet5", "in_channels", in_channels)
        image_size = positive_int("LeNet5", "image_size", image_size)
        num_classes = positive_int("LeNet5", "num_classes", num_classes)
        side = (image_size // 2 - 4) // 2
        if side < 1:
            raise UsageError(f"LeNet5: image_size must be at least 12, got {image_size}")

        def act() -> nn.Module:
            return make_activation("LeNet5", activation)

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), act(), nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )
        self.in_channels = in_channels
        self.image_size = image_size

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(as_images(x, self.in_channels, self.image_size)))


__all__ = ["LeNet5", "SmallCNN"]
