"""load_dataset's permute_pixels= (permuted-pixel sequences) and targets="inputs" (autoencoders),
checked pixel by pixel against the images they come from."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import write_cifar10
from topograph.core import Objective
from topograph.data import load_dataset, pixel_permutation
from topograph.errors import UsageError
from topograph.models import build_model


def test_permuted_pixels_are_one_fixed_permutation_read_row_by_row():
    images = load_dataset("digits")
    seq = load_dataset("digits", permute_pixels=5)
    perm = pixel_permutation(8, 8, 5)
    assert sorted(perm.tolist()) == list(range(64)) and not torch.equal(perm, torch.arange(64))
    assert seq.input_shape == (8, 8) and seq.meta["permute_pixels"] == 5
    for split in ("train", "test"):                       # the same permutation in every split
        x, y = images.splits[split]
        s, y_seq = seq.splits[split]
        assert torch.equal(y, y_seq)
        for n in (0, 7, len(y) - 1):
            flat = x[n, 0].reshape(-1)
            for t in range(8):
                for w in range(8):
                    assert s[n, t, w] == flat[perm[t * 8 + w]]
    assert torch.equal(load_dataset("digits", permute_pixels=5).train[0], seq.train[0])
    assert not torch.equal(load_dataset("digits", permute_pixels=6).train[0], seq.train[0])
    assert load_dataset("digits", permute_pixels=5, flatten=True).input_shape == (64,)


def test_permuted_colour_images_keep_each_pixels_channels_together(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", n=2)
    images = load_dataset("cifar10", root=tmp_path)
    seq = load_dataset("cifar10", root=tmp_path, permute_pixels=0)
    assert seq.input_shape == (32, 96)
    perm = pixel_permutation(32, 32, 0)
    x, s = images.test[0], seq.test[0]
    for t, w, c in ((0, 0, 0), (3, 17, 2), (31, 31, 1)):
        pixel = int(perm[t * 32 + w])
        assert s[1, t, w * 3 + c] == x[1, c, pixel // 32, pixel % 32]


def test_targets_are_the_flattened_inputs():
    ds = load_dataset("digits", targets="inputs", normalize=False)
    for split in ("train", "test"):
        x, y = ds.splits[split]
        assert y.dtype == torch.float32 and torch.equal(y, x.reshape(len(x), -1))
    assert ds.num_classes == 0 and ds.class_names == () and ds.meta["targets"] == "inputs"
    both = load_dataset("digits", targets="inputs", permute_pixels=1, flatten=True, val_size=100)
    x, y = both.val
    assert x.shape == y.shape == (100, 64) and torch.equal(x, y)


def test_an_autoencoder_objective_scores_reconstruction_and_has_no_accuracy():
    ds = load_dataset("digits", targets="inputs", normalize=False, limit_test=50)
    model = build_model("autoencoder", seed=0, in_channels=1, image_size=8)
    ev = Objective(model, F.mse_loss, ds).evaluate(split="test")
    x, _ = ds.test
    with torch.no_grad():
        expected = ((model(x) - x.reshape(50, -1)) ** 2).mean()
    assert ev.loss == pytest.approx(float(expected), rel=1e-5) and math.isnan(ev.accuracy)


def test_bad_options_are_one_line_usage_errors():
    for bad in (-1, 1.5, True, "7"):
        with pytest.raises(UsageError, match="permute_pixels=.*non-negative int seed"):
            load_dataset("digits", permute_pixels=bad)
    with pytest.raises(UsageError, match="targets='pixels': must be one of 'labels', 'inputs'"):
        load_dataset("digits", targets="pixels")
