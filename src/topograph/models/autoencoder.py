"""Seed 001's autoencoder: 784 → 32 → 32 → 32 → 784, softplus, sigmoid output, no biases."""

from __future__ import annotations

from torch import Tensor, nn

from topograph.models.common import activation as make_activation
from topograph.models.common import positive_int


class Autoencoder(nn.Module):
    """Fully connected autoencoder D → 32 → 32 | 32 → D without biases (seed 001).

    Source: Yu & Morozov, arXiv:2602.21276, model "Autoencoder" on MNIST, layout of the
    authors' code (``NN_arch.py``): the encoder D → 32 → 32 and the decoder 32 → 32 → D, a
    softplus after every layer but the last, a sigmoid on the output (pixels in [0, 1]), no
    biases, trained with the mean squared error against the input itself.  Use it with data
    whose targets are the flattened inputs in [0, 1]: ``load_dataset("mnist", normalize=False,
    targets="inputs")`` (``[data] targets = "inputs"``, ``normalize = false``, ``[model] loss =
    "mse"`` in a run config).  ``activation="relu"`` swaps the hidden activations.

    Parameters: ``2·(D·32) + 2·(32·32)`` — 52,224 for 28×28×1 (the paper's and the code's count),
    198,656 for 32×32×3.  Input ``(N, C, H, W)`` or ``(N, D)``; output ``(N, D)`` with
    ``D = C·H·W``.
    """

    def __init__(self, *, activation: str = "softplus", in_channels: int = 1, image_size: int = 28,
                 hidden: int = 32) -> None:
        super().__init__()
        c = positive_int("Autoencoder", "in_channels", in_channels)
        side = positive_int("Autoencoder", "image_size", image_size)
        width = positive_int("Autoencoder", "hidden", hidden)
        dim = c * side * side

        def act() -> nn.Module:
            return make_activation("Autoencoder", activation)

        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(dim, width, bias=False), act(), nn.Linear(width, width, bias=False), act(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(width, width, bias=False), act(), nn.Linear(width, dim, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


__all__ = ["Autoencoder"]
