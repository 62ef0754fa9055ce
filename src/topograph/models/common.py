"""What the model families share: input shapes, activations by name, checked keyword values.

Image models take ``in_channels`` and ``image_size`` (28×28×1 for MNIST and Fashion-MNIST,
32×32×3 for CIFAR-10) and accept a batch of images ``(N, C, H, W)`` or the same images
flattened to ``(N, C·H·W)`` (what ``flatten = true`` data gives), which :func:`as_images`
restores.
"""

from __future__ import annotations

from torch import Tensor, nn

from topograph.errors import UsageError

#: activations the models of the papers use, by the name their ``activation=`` keyword takes
ACTIVATIONS: dict[str, type[nn.Module]] = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh}


def positive_int(model: str, keyword: str, value: object) -> int:
    """``value`` as an int ≥ 1, or a one-line UsageError naming the model and the keyword."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{model}: {keyword} must be a positive integer, got {value!r}")
    return int(value)


def activation(model: str, name: object) -> nn.Module:
    """A fresh activation module from its name (``"softplus"``, ``"relu"``, ``"tanh"``)."""
    if name not in ACTIVATIONS:
        raise UsageError(f"{model}: activation must be one of {', '.join(map(repr, ACTIVATIONS))}, "
                         f"got {name!r}")
    return ACTIVATIONS[str(name)]()


def as_images(x: Tensor, in_channels: int, image_size: int) -> Tensor:
    """``(N, D)`` with ``D = C·H·W`` → ``(N, C, H, W)``; images pass through unchanged."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], in_channels, image_size, image_size)
    return x


__all__ = ["ACTIVATIONS", "activation", "as_images", "positive_int"]
