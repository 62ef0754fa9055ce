"""suggest_chunk_size: evaluation chunks sized to the model's activations."""

import torch
from torch import nn

from topograph.core.objective import suggest_chunk_size


def test_chunk_follows_activation_count_and_touches_nothing():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    # activations per sample: 784 (flatten) + 64 + 64 + 10 = 922 floats
    assert suggest_chunk_size(mlp, torch.zeros(5, 1, 28, 28), budget=922 * 100) == 64  # clipped below
    assert suggest_chunk_size(mlp, torch.zeros(5, 1, 28, 28), budget=922 * 300, low=1) == 256
    assert suggest_chunk_size(mlp, torch.zeros(5, 1, 28, 28)) == 8192  # 2^24 / 922 > 8192
    conv = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(32 * 28 * 28, 10))
    conv.train()
    stats = conv[1].running_mean.clone(), conv[1].num_batches_tracked.clone()
    example = torch.randn(3, 1, 28, 28)
    rng = torch.get_rng_state()
    per_sample = 4 * 32 * 28 * 28 + 32 * 28 * 28 + 10  # conv, bn, relu, dropout, flatten outputs + linear
    got = suggest_chunk_size(conv, example, budget=per_sample * 200, low=1)
    assert got == 128
    assert conv.training and all(m.training for m in conv.modules())
    assert torch.equal(conv[1].running_mean, stats[0]) and torch.equal(conv[1].num_batches_tracked, stats[1])
    assert torch.equal(torch.get_rng_state(), rng)
    assert not conv[0]._forward_hooks
