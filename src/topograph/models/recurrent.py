"""Seed 001's LSTM classifier for permuted-pixel MNIST: 28 steps × 28 features, hidden 48."""

from __future__ import annotations

from torch import Tensor, nn

from topograph.errors import UsageError
from topograph.models.common import positive_int


class SequenceLSTM(nn.Module):
    """One LSTM layer over a sequence; its last hidden state → a linear classifier without bias.

    Source: Yu & Morozov, arXiv:2602.21276, model "LSTM" on MNIST, layout of the authors' code
    (``NN_arch.py``): the 784 pixels permuted by one fixed seeded permutation, read as 28 steps of
    28 features, an ``nn.LSTM`` with 48 hidden units (PyTorch's gates and both bias vectors),
    the hidden state after the last step → ``Linear(48, 10, bias=False)``.  Build the data with
    ``load_dataset("mnist", permute_pixels=1234)`` (seed 1234 as in the authors' code; their
    permutation is drawn by their own code, so the pixel order itself may differ — the task,
    one fixed random order, is the same).

    ``image_size`` steps of ``in_channels · image_size`` features each (28 × 28 for MNIST; a
    32×32×3 image read as a sequence gives 32 × 96).  Parameters:
    ``4·h·(F + h) + 8·h + h·k`` — 15,456 for F = 28, h = 48, k = 10 (the paper's and the code's
    count), 28,512 for F = 96.

    Input ``(N, T, F)`` (batch first); ``(N, T·F)`` and ``(N, 1, T, F)`` are reshaped to it.
    Hessian-vector products through ``nn.LSTM`` need double backward, which the CPU
    implementation supports; cuDNN's fused LSTM does not.
    """

    def __init__(self, *, in_channels: int = 1, image_size: int = 28, hidden_size: int = 48,
                 num_classes: int = 10) -> None:
        super().__init__()
        c = positive_int("SequenceLSTM", "in_channels", in_channels)
        steps = positive_int("SequenceLSTM", "image_size", image_size)
        hidden = positive_int("SequenceLSTM", "hidden_size", hidden_size)
        k = positive_int("SequenceLSTM", "num_classes", num_classes)
        self.steps, self.features = steps, c * steps
        self.lstm = nn.LSTM(self.features, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, k, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2 or (x.ndim == 4 and x.shape[1] == 1):
            x = x.reshape(x.shape[0], self.steps, self.features)
        if x.ndim != 3 or x.shape[2] != self.features:
            raise UsageError(f"SequenceLSTM: input must be (N, steps, {self.features}), got {tuple(x.shape)}")
        _, (h_last, _) = self.lstm(x)
        return self.linear(h_last[-1])


__all__ = ["SequenceLSTM"]
