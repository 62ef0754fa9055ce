"""The in-memory data set every topograph feature consumes, and :func:`load_dataset`.

A :class:`Dataset` holds whole splits as tensors — inputs ``float32``, labels ``int64`` — so
training and evaluation batch by index with no per-sample Python objects.  The functional
core (:class:`topograph.core.Objective`) takes it directly through its ``splits`` attribute.

:func:`load_dataset` is the one entry point by name.  It asks a *source* (``digits``,
``mnist``, ``fashion-mnist``, ``cifar10``) for the raw train/test images scaled to [0, 1], then
applies the same post-processing to every source, in this order:

1. **validation split** — a seeded permutation ``π`` of the training indices; the first
   ``n_val`` of ``π`` become ``val``, the rest stay ``train``.  The same seed gives the same
   split, and the two are disjoint by construction;
2. **limits** — ``limit_train`` keeps the first ``n`` of the remaining permuted training
   indices (so the validation split does not depend on the limit), ``limit_test`` the first
   ``n`` of a seeded permutation of the test indices; the kept indices are then sorted, so a
   subset keeps file order;
3. **normalisation** — per channel ``x ← (x − μ_c) / σ_c`` with the source's published
   constants (Fashion-MNIST, CIFAR-10) or, for sources without them (digits), μ and σ of the
   training split *after* the validation split is removed (before ``limit_train``, so quick
   runs see the same scaling);
4. **pixel permutation** (``permute_pixels=s``, permuted-pixel MNIST) — one fixed permutation
   π of the H·W pixel positions, drawn by ``torch.randperm(H·W)`` from a generator seeded with
   ``s``, applied to every image of every split (the same π for all channels); the image then
   becomes a sequence of H steps of W·C features: step t holds the permuted pixels
   π[tW], …, π[tW + W − 1], each with its C channel values (channels last).  MNIST gives
   ``(N, 28, 28)``: 28 steps of 28 features, the input of seed 001's LSTM;
5. **targets** — ``"labels"`` (default) keeps the class labels; ``"inputs"`` makes each
   sample's target its own input, flattened to ``(D,)`` (after steps 3–4: an autoencoder
   reconstructs what it is given; use ``normalize=False`` for targets in [0, 1], as a sigmoid
   output needs).  The targets are views of the inputs: treat both as read-only;
6. **flatten** — inputs reshaped to ``(N, D)``.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from topograph.errors import UsageError

Split = tuple[Tensor, Tensor]

#: what ``load_dataset(targets=...)`` accepts
TARGETS = ("labels", "inputs")

#: data-set name -> module of topograph.data that provides ``load_raw(root, download)``
SOURCES: dict[str, str] = {
    "digits": "topograph.data.digits",
    "mnist": "topograph.data.mnist",
    "fashion-mnist": "topograph.data.fashion_mnist",
    "cifar10": "topograph.data.cifar10",
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Whole splits of a classification data set, as tensors in memory.

    Attributes
    ----------
    name:
        the data-set name (``"digits"``, ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or
        the user's).
    splits:
        ``{"train": (x, y), "test": (x, y)}`` and optionally ``"val"`` (``"train"`` is required;
        the built-in data sets always have ``"test"``, a user's data may not); ``x`` is ``float32``
        of shape ``(N, *input_shape)``, ``y`` is ``int64`` of shape ``(N,)`` — or, for a data
        set whose targets are its inputs (``load_dataset(..., targets="inputs")``), ``float32``
        of shape ``(N, D)``.
    num_classes:
        number of classes; labels lie in ``[0, num_classes)`` (0 when the targets are not
        class labels).
    input_shape:
        shape of one input, e.g. ``(1, 28, 28)`` or ``(784,)`` when flattened.
    class_names:
        one name per class, in label order.
    meta:
        provenance: source, normalisation mean/std, file checksums, split seeds, limits.

    The tensors are shared, not copied, by :meth:`flattened`; treat them as read-only.
    """

    name: str
    splits: dict[str, Split]
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "train" not in self.splits:
            raise UsageError(f"Dataset {self.name!r}: splits must contain 'train'; got {sorted(self.splits)}")
        for split, pair in self.splits.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise UsageError(f"Dataset {self.name!r}: split {split!r} must be an (inputs, labels) pair")
            x, y = pair
            if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
                raise UsageError(f"Dataset {self.name!r}: split {split!r} must hold tensors")
            if x.shape[0] != y.shape[0]:
                raise UsageError(
                    f"Dataset {self.name!r}: split {split!r} has {x.shape[0]} inputs but {y.shape[0]} labels"
                )
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise UsageError(
                    f"Dataset {self.name!r}: split {split!r} inputs have shape {tuple(x.shape[1:])}, "
                    f"input_shape says {tuple(self.input_shape)}"
                )

    # -- access ---------------------------------------------------------------------------
    def _get(self, split: str) -> Split:
        if split not in self.splits:
            hint = " (load it with val_size > 0)" if split == "val" else ""
            raise UsageError(
                f"Dataset {self.name!r} has no split {split!r}{hint}; it has {', '.join(self.splits)}"
            )
        return self.splits[split]

    @property
    def train(self) -> Split:
        """``(x, y)`` of the training split."""
        return self._get("train")

    @property
    def test(self) -> Split:
        """``(x, y)`` of the test split."""
        return self._get("test")

    @property
    def val(self) -> Split:
        """``(x, y)`` of the validation split (UsageError if it was not requested)."""
        return self._get("val")

    @property
    def input_dim(self) -> int:
        """Number of input features, ``prod(input_shape)``."""
        return int(np.prod(self.input_shape))

    def n(self, split: str = "train") -> int:
        """Number of samples in ``split``."""
        return int(self._get(split)[1].shape[0])

    def subset(self, split: str = "train", n: int = 256, seed: int = 0) -> Split:
        """``n`` samples of ``split`` drawn without replacement by a seeded permutation."""
        x, y = self._get(split)
        total = y.shape[0]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
            raise UsageError(f"subset n={n!r} for split {split!r}: must be an integer in [1, {total}]")
        gen = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(total, generator=gen)[:n]
        return x[idx], y[idx]

    # -- derived data sets ----------------------------------------------------------------
    def flattened(self) -> Dataset:
        """The same data set with inputs reshaped to ``(N, D)`` (views, no copy)."""
        splits = {k: (x.reshape(x.shape[0], -1), y) for k, (x, y) in self.splits.items()}
        meta = {**self.meta, "flatten": True}
        return replace(self, splits=splits, input_shape=(self.input_dim,), meta=meta)

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the name and every split's shapes, dtypes and bytes.

        Two data sets with the same fingerprint hold identical tensors (up to hash
        collisions); the hash reads the tensors' memory without copying it.
        """
        h = hashlib.sha256()
        h.update(self.name.encode())
        for split in sorted(self.splits):
            x, y = self.splits[split]
            for t in (x, y):
                arr = np.ascontiguousarray(t.detach().cpu().numpy())
                h.update(f"|{split}|{arr.dtype.str}|{arr.shape}|".encode())
                h.update(memoryview(arr).cast("B"))
        return h.hexdigest()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={self.n(k)}" for k in self.splits)
        return (
            f"Dataset(name={self.name!r}, {sizes}, input_shape={tuple(self.input_shape)}, "
            f"num_classes={self.num_classes})"
        )


@dataclass(frozen=True, eq=False)
class RawData:
    """What a source hands to :func:`load_dataset`: images scaled to [0, 1], before splitting.

    ``train``/``test`` inputs are ``float32`` of shape ``(N, C, H, W)`` (or ``(N, D)``),
    labels ``int64``.  ``mean``/``std`` are per-channel normalisation constants, or ``None``
    to estimate them from the training split.  The tensors must be fresh (not cached by the
    source): :func:`load_dataset` normalises them in place to save a copy.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    meta: dict[str, Any]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


# -- load_dataset ---------------------------------------------------------------------------
def _validation_count(val_size: int | float, n_train: int) -> int:
    """Number of validation samples from an int count or a float fraction in (0, 1)."""
    if isinstance(val_size, bool):
        raise UsageError(f"val_size={val_size!r}: must be an int count or a float fraction in (0, 1)")
    if isinstance(val_size, (int, np.integer)):
        if not 0 <= val_size < n_train:
            raise UsageError(f"val_size={val_size}: a sample count must lie in [0, {n_train - 1}]")
        return int(val_size)
    if isinstance(val_size, (float, np.floating)):
        if val_size == 0.0:
            return 0
        if not 0.0 < val_size < 1.0:
            raise UsageError(f"val_size={val_size}: a fraction must lie in (0, 1) (or pass an int count)")
        n_val = int(round(val_size * n_train))
        return min(max(n_val, 1), n_train - 1)
    raise UsageError(f"val_size={val_size!r}: must be an int count or a float fraction in (0, 1)")


def _limit(value: int | None, argument: str) -> int | None:
    """``None`` or 0 mean "all samples"; otherwise a positive int."""
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value == 0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise UsageError(f"{argument}={value!r}: must be a positive int (or None for all samples)")
    return int(value)


def _normalize_(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """In place ``(x − mean_c) / std_c`` over the channel axis 1 (scalar stats broadcast)."""
    shape = (1, -1) + (1,) * (x.ndim - 2) if x.ndim >= 2 else (-1,)
    x.sub_(mean.reshape(shape)).div_(std.reshape(shape))
    return x


def _channel_stats(x: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std of ``x`` (N, C, ...) in float64."""
    per_channel = x.transpose(0, 1).reshape(channels, -1) if x.ndim >= 3 else x.reshape(1, -1)
    per_channel = per_channel.double()
    return per_channel.mean(dim=1), per_channel.std(dim=1, correction=0)


def select_splits(train: Split, test: Split | None, *, val_size: int | float = 0, seed: int = 0,
                  limit_train: int | None = None, limit_test: int | None = None
                  ) -> tuple[dict[str, Split], int, Tensor]:
    """Steps 1–2 of :func:`load_dataset` (validation split, then limits) on whole splits:
    ``({"train", ["val"], ["test"]}, n_val, stats_idx)`` where ``stats_idx`` are the training
    indices left after removing the validation samples (before the limit).  ``test`` may be
    ``None`` (no test split); splits that need no selection are returned as they are (no copy).
    """
    x_train, y_train = train
    n_train = int(y_train.shape[0])
    n_val = _validation_count(val_size, n_train)

    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n_train, generator=gen)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    stats_idx = train_idx
    if limit_train is not None:
        train_idx = train_idx[:limit_train]

    splits: dict[str, Split] = {}
    if n_val == 0 and limit_train is None:
        splits["train"] = (x_train, y_train)
    else:
        train_idx = train_idx.sort().values
        splits["train"] = (x_train[train_idx], y_train[train_idx])
    if n_val:
        val_idx = val_idx.sort().values
        splits["val"] = (x_train[val_idx], y_train[val_idx])
    if test is not None:
        x_test, y_test = test
        if limit_test is None:
            splits["test"] = (x_test, y_test)
        else:
            test_gen = torch.Generator().manual_seed(int(seed) + 1)
            test_idx = torch.randperm(int(y_test.shape[0]), generator=test_gen)[:limit_test].sort().values
            splits["test"] = (x_test[test_idx], y_test[test_idx])
    return splits, n_val, stats_idx


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    val_size: int | float = 0,
    seed: int = 0,
    flatten: bool = False,
    normalize: bool = True,
    limit_train: int | None = None,
    limit_test: int | None = None,
    permute_pixels: int | None = None,
    targets: str = "labels",
) -> Dataset:
    """Load a data set by name as a :class:`Dataset` of in-memory tensors.

    Parameters
    ----------
    name:
        ``"digits"`` (scikit-learn's bundled 8×8 digits, no download), ``"mnist"``,
        ``"fashion-mnist"`` or ``"cifar10"``.
    root:
        data directory; default ``$TOPOGRAPH_DATA_DIR``, else ``~/.cache/topograph``
        (see :func:`topograph.data.download.data_dir`).  Unused by digits.
    download:
        fetch missing files from the official mirror, with checksums.
    val_size:
        validation samples carved out of train: an int count or a float fraction in (0, 1)
        of the FULL training set, taken before ``limit_train`` (which then subsets the rest,
        disjoint from the validation samples).
    seed:
        seed of the validation split and of the ``limit_*`` subsets.
    flatten:
        inputs as ``(N, D)`` instead of ``(N, C, H, W)``.
    normalize:
        standard per-data-set normalisation (see the module docstring); ``False`` keeps
        pixels scaled to [0, 1].
    limit_train, limit_test:
        keep only this many samples (a seeded random subset; ``None`` or 0 = all).
    permute_pixels:
        a seed: permute the pixels of every image by one fixed seeded permutation and shape
        each image as a sequence of H steps × W·C features (permuted-pixel MNIST, see the
        module docstring); ``None`` (default) leaves the images as they are.
    targets:
        ``"labels"`` (default) or ``"inputs"``: each sample's target is its own (flattened)
        input, for autoencoders trained with a reconstruction loss such as MSE.  Accuracy is
        then undefined (NaN in :class:`topograph.core.Objective` evaluations).
    """
    if not isinstance(name, str) or name.lower() not in SOURCES:
        raise UsageError(f"unknown data set {name!r}; known: {', '.join(SOURCES)}")
    name = name.lower()
    n_limit_train = _limit(limit_train, "limit_train")
    n_limit_test = _limit(limit_test, "limit_test")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UsageError(f"seed={seed!r}: must be an int")
    if permute_pixels is not None and (isinstance(permute_pixels, bool)
                                       or not isinstance(permute_pixels, (int, np.integer))
                                       or permute_pixels < 0):
        raise UsageError(f"permute_pixels={permute_pixels!r}: must be a non-negative int seed (or None)")
    if targets not in TARGETS:
        raise UsageError(f"targets={targets!r}: must be one of {', '.join(map(repr, TARGETS))}")

    source = importlib.import_module(SOURCES[name])
    raw: RawData = source.load_raw(root=root, download=download)

    x_train, y_train = raw.train
    splits, n_val, stats_idx = select_splits(raw.train, raw.test, val_size=val_size, seed=seed,
                                             limit_train=n_limit_train, limit_test=n_limit_test)

    meta: dict[str, Any] = dict(raw.meta)
    meta.update(
        val_size=n_val, split_seed=int(seed), limit_train=n_limit_train, limit_test=n_limit_test,
        normalize=bool(normalize), flatten=bool(flatten),
    )
    if normalize:
        channels = x_train.shape[1] if x_train.ndim >= 3 else 1
        if raw.mean is not None and raw.std is not None:
            mean = torch.tensor(raw.mean, dtype=torch.float64)
            std = torch.tensor(raw.std, dtype=torch.float64)
            meta["normalization"] = {"mean": list(raw.mean), "std": list(raw.std), "estimated": False}
        else:
            mean, std = _channel_stats(x_train[stats_idx] if n_val else x_train, channels)
            meta["normalization"] = {
                "mean": [float(v) for v in mean], "std": [float(v) for v in std],
                "estimated": True, "from": "train split (after removing val)",
            }
        mean32, std32 = mean.float(), std.float()
        for split, (x, y) in list(splits.items()):
            splits[split] = (_normalize_(x, mean32, std32), y)  # RawData tensors are ours to modify

    if permute_pixels is not None:
        splits = _permute_pixels(splits, int(permute_pixels), raw.name)
        meta["permute_pixels"] = int(permute_pixels)
    num_classes, class_names = raw.num_classes, tuple(raw.class_names)
    if targets == "inputs":
        splits = {split: (x, x.reshape(x.shape[0], -1)) for split, (x, _) in splits.items()}
        num_classes, class_names = 0, ()
    meta["targets"] = targets

    input_shape = tuple(int(s) for s in splits["train"][0].shape[1:])
    dataset = Dataset(
        name=raw.name, splits=splits, num_classes=num_classes, input_shape=input_shape,
        class_names=class_names, meta=meta,
    )
    return dataset.flattened() if flatten else dataset


def pixel_permutation(height: int, width: int, seed: int) -> Tensor:
    """The permutation of ``height · width`` pixel positions that ``permute_pixels=seed`` applies."""
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(int(seed)))


def _permute_pixels(splits: dict[str, Split], seed: int, name: str) -> dict[str, Split]:
    """Images (N, C, H, W) → sequences (N, H, W·C) of one fixed seeded pixel permutation."""
    x0 = splits["train"][0]
    if x0.ndim != 4:
        raise UsageError(f"permute_pixels: data set {name!r} has inputs of shape {tuple(x0.shape[1:])}, "
                         "not images (C, H, W)")
    _, channels, height, width = x0.shape
    perm = pixel_permutation(height, width, seed)
    out = {}
    for split, (x, y) in splits.items():
        n = x.shape[0]
        pixels = x.reshape(n, channels, height * width)[:, :, perm]
        out[split] = (pixels.transpose(1, 2).reshape(n, height, width * channels).contiguous(), y)
    return out


def dataset_from_tensors(
    name: str,
    splits: Mapping[str, Split],
    *,
    class_names: tuple[str, ...] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Dataset:
    """Wrap user tensors as a :class:`Dataset` (inputs cast to float32, labels to int64)."""
    out: dict[str, Split] = {}
    for split, (x, y) in splits.items():
        out[split] = (torch.as_tensor(x).float(), torch.as_tensor(y).long())
    first = out.get("train", next(iter(out.values())))
    labels = torch.cat([y for _, y in out.values()])
    num_classes = int(labels.max()) + 1 if labels.numel() else 0
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))
    return Dataset(
        name=name, splits=out, num_classes=num_classes, input_shape=tuple(first[0].shape[1:]),
        class_names=names, meta=dict(meta or {}),
    )
