"""Evaluation chunks sized to the model's activations; counting them touches nothing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, tiny_conv_bn
from topograph.core import Objective
from topograph.core.modules import ACTIVATION_BUDGET, activations_per_sample, chunk_size_for


def test_chunk_follows_activation_count_and_touches_nothing():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    # activations per sample: 784 (flatten) + 64 + 64 + 10 = 922 floats
    assert activations_per_sample(mlp, torch.zeros(5, 1, 28, 28)) == 922
    assert chunk_size_for(922, budget=922 * 100) == 64
    assert chunk_size_for(922, budget=922 * 300, low=1) == 256
    assert chunk_size_for(922, budget=922 * 10) == 32  # clipped below
    assert chunk_size_for(1, budget=1 << 30) == 8192  # clipped above
    conv = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(32 * 28 * 28, 10))
    conv.train()
    stats = conv[1].running_mean.clone(), conv[1].num_batches_tracked.clone()
    example = torch.randn(3, 1, 28, 28)
    rng = torch.get_rng_state()
    per_sample = 4 * 32 * 28 * 28 + 32 * 28 * 28 + 10  # conv, bn, relu, dropout, flatten outputs + linear
    assert activations_per_sample(conv, example) == per_sample
    assert conv.training and all(m.training for m in conv.modules())
    assert torch.equal(conv[1].running_mean, stats[0]) and torch.equal(conv[1].num_batches_tracked, stats[1])
    assert torch.equal(torch.get_rng_state(), rng)
    assert not conv[0]._forward_hooks  # counting left no hook behind: torch has no public way to list hooks


def test_objective_picks_the_chunk_from_the_activations_and_the_loss_does_not_depend_on_it():
    conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 10 * 10, 3))
    x, y = classification_data(300, (1, 10, 10))
    auto = Objective(conv, F.cross_entropy, (x, y))
    per_sample = 3 * 8 * 10 * 10 + 3
    assert auto.chunk_size == chunk_size_for(per_sample, budget=ACTIVATION_BUDGET)
    whole = Objective(conv, F.cross_entropy, (x, y), chunk_size=300)
    assert abs(auto.loss() - whole.loss()) < 1e-6
    assert Objective(conv, F.cross_entropy, (x, y), batchnorm="batch").chunk_size == 8192


def test_a_conv_net_on_the_cpu_sees_channels_last_strides_even_with_one_channel():
    # with one channel "contiguous" and "channels-last" describe the same tensor, and
    # .contiguous(memory_format=...) keeps the contiguous strides: the first convolution then
    # ran in the default layout and its output forced a reorder before the next one
    model = tiny_conv_bn(channels=1, batchnorm=False)
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    obj = Objective(model, F.cross_entropy, (x, y))
    laid = obj.layout(x)
    assert laid.stride()[1] == 1 and torch.equal(laid, x)
    kernels = {k: v for k, v in obj.layout_params(dict(model.named_parameters())).items() if v.ndim == 4}
    assert kernels and all(v.stride()[1] == 1 for v in kernels.values())
    reference = F.cross_entropy(model(x), y).item()
    assert obj.loss() == pytest.approx(reference, rel=1e-6)
