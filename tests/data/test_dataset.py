"""Dataset and load_dataset on the bundled digits: sizes, pixels against scikit-learn, stratified,
validation and limited splits, flattening, subsets, fingerprints, one-line errors.  The file
formats and sources have their own modules (test_idx, test_download, test_fashion_mnist,
test_mnist, test_cifar10, test_safe_pickle)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from topograph.core import Objective
from topograph.data import Dataset, dataset_from_tensors, load_dataset
from topograph.errors import UsageError


@pytest.fixture(scope="module")
def digits_raw():
    """sklearn's digits as an independent reference (pixels/16, flattened)."""
    bunch = load_digits()
    return bunch.images.reshape(len(bunch.images), -1).astype(np.float32) / 16.0, bunch.target


def _rows(x: torch.Tensor, y: torch.Tensor) -> Counter:
    """Multiset of (image bytes, label) — order-free identity of a split."""
    flat = x.reshape(x.shape[0], -1).numpy()
    return Counter((row.tobytes(), int(label)) for row, label in zip(flat, y.tolist()))


def test_digits_sizes_types_and_stratified_split(digits_raw):
    ds = load_dataset("digits")
    images, target = digits_raw
    assert ds.n("train") + ds.n("test") == 1797 == len(target)
    assert (ds.n("train"), ds.n("test")) == (1437, 360)
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10 and len(ds.class_names) == 10
    for x, y in ds.splits.values():
        assert x.dtype == torch.float32 and y.dtype == torch.int64
    # stratified: each class's test share is within one sample of 20 % of its count
    full = np.bincount(target, minlength=10)
    test = np.bincount(ds.test[1].numpy(), minlength=10)
    assert np.all(np.abs(test - full * 360 / 1797) <= 1.0)


def test_digits_pixels_match_sklearn_and_normalisation(digits_raw):
    images, target = digits_raw
    raw = load_dataset("digits", normalize=False)
    reference = Counter((row.tobytes(), int(t)) for row, t in zip(images, target))
    assert _rows(*raw.train) + _rows(*raw.test) == reference
    ds = load_dataset("digits")
    # normalisation uses the train split's scalar mean/std, computed here independently
    train_pixels = raw.train[0].numpy().astype(np.float64)
    mean, std = train_pixels.mean(), train_pixels.std()
    assert ds.meta["normalization"]["mean"][0] == pytest.approx(mean, rel=1e-9)
    assert ds.meta["normalization"]["std"][0] == pytest.approx(std, rel=1e-9)
    torch.testing.assert_close(ds.test[0], (raw.test[0] - mean) / std, rtol=1e-5, atol=1e-5)
    assert float(ds.train[0].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(ds.train[0].std()) == pytest.approx(1.0, abs=1e-3)


def test_validation_split_is_deterministic_disjoint_and_complete():
    full = load_dataset("digits", normalize=False)
    a = load_dataset("digits", normalize=False, val_size=0.25, seed=3)
    b = load_dataset("digits", normalize=False, val_size=0.25, seed=3)
    c = load_dataset("digits", normalize=False, val_size=0.25, seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.n("val") == round(0.25 * 1437) and a.n("train") == 1437 - a.n("val")
    # train and val partition the original training split (multiset equality) ...
    assert _rows(*a.train) + _rows(*a.val) == _rows(*full.train)
    # ... and the test split is untouched
    assert torch.equal(a.test[0], full.test[0])
    counted = load_dataset("digits", normalize=False, val_size=100, seed=3)
    assert counted.n("val") == 100


def test_limits_are_seeded_subsets_and_do_not_move_val():
    full = load_dataset("digits", normalize=False, val_size=200, seed=5)
    small = load_dataset("digits", normalize=False, val_size=200, seed=5, limit_train=50, limit_test=30)
    assert small.n("train") == 50 and small.n("test") == 30
    assert torch.equal(small.val[0], full.val[0])
    assert not (_rows(*small.train) - _rows(*full.train))  # a sub-multiset
    assert not (_rows(*small.test) - _rows(*full.test))
    again = load_dataset("digits", normalize=False, val_size=200, seed=5, limit_train=50, limit_test=30)
    assert small.fingerprint() == again.fingerprint()


def test_flatten_subset_and_fingerprint():
    ds = load_dataset("digits", limit_train=100)
    flat = load_dataset("digits", limit_train=100, flatten=True)
    assert flat.input_shape == (64,) and flat.train[0].shape == (100, 64)
    assert torch.equal(flat.train[0], ds.flattened().train[0])
    assert ds.flattened().fingerprint() == flat.fingerprint()
    x, y = ds.subset("train", 10, seed=1)
    assert x.shape == (10, 1, 8, 8)
    assert torch.equal(ds.subset("train", 10, seed=1)[0], x)
    assert not (_rows(x, y) - _rows(*ds.train))
    # the fingerprint sees a single changed value
    x0, y0 = ds.train
    x1 = x0.clone()
    x1[3, 0, 4, 4] += 1e-3
    other = Dataset("digits", {"train": (x1, y0), "test": ds.test}, 10, ds.input_shape)
    same = Dataset("digits", {"train": (x0.clone(), y0), "test": ds.test}, 10, ds.input_shape)
    assert other.fingerprint() != ds.fingerprint() == same.fingerprint()


def test_objective_evaluates_a_dataset():
    ds = load_dataset("digits", flatten=True)
    torch.manual_seed(0)
    model = nn.Linear(64, 10)
    obj = Objective(model, F.cross_entropy, ds)
    with torch.no_grad():
        expected = F.cross_entropy(model(ds.test[0]), ds.test[1]).item()
    assert obj.loss(split="test") == pytest.approx(expected, rel=1e-5)


def test_bad_arguments_raise_one_line_usage_errors():
    with pytest.raises(UsageError, match="known: digits, mnist, fashion-mnist, cifar10"):
        load_dataset("emnist")
    for bad in (1.0, -0.1, 1437, -1, "10%", True):
        with pytest.raises(UsageError, match="val_size"):
            load_dataset("digits", val_size=bad)
    with pytest.raises(UsageError, match="limit_train"):
        load_dataset("digits", limit_train=-5)
    ds = load_dataset("digits")
    with pytest.raises(UsageError, match="no split 'val'.*val_size"):
        ds.val
    with pytest.raises(UsageError, match=r"subset n=5000"):
        ds.subset("train", 5000)
    with pytest.raises(UsageError, match="inputs but"):
        splits = {"train": (torch.zeros(3, 2), torch.zeros(4)), "test": (torch.zeros(1, 2), torch.zeros(1))}
        Dataset("x", splits, 2, (2,))


def test_dataset_from_tensors():
    splits = {"train": (np.ones((4, 3)), [0, 1, 2, 1]), "test": (np.zeros((2, 3)), [0, 2])}
    ds = dataset_from_tensors("toy", splits)
    assert ds.num_classes == 3 and ds.input_shape == (3,)
    assert ds.train[0].dtype == torch.float32 and ds.train[1].dtype == torch.int64
