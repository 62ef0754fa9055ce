"""scikit-learn's bundled handwritten digits: the data set that needs no download.

1,797 grayscale 8×8 images of the digits 0–9 (the UCI "Optical Recognition of Handwritten
Digits" test set, shipped inside scikit-learn as :func:`sklearn.datasets.load_digits`),
pixel values 0–16.  Pixels are scaled to [0, 1] by ``/16``; :func:`load_dataset` then
standardises them with the scalar mean and std of the training split (there are no
published constants; the values are stored in ``meta["normalization"]``).

The train/test split is fixed and stratified by class: 360 test images (20 %), 1,437 train,
drawn by :func:`sklearn.model_selection.train_test_split` with ``random_state=0``; within each
split the samples keep the file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from topograph.data.dataset import RawData

NUM_TEST = 360
SPLIT_SEED = 0
PIXEL_MAX = 16.0


def load_raw(root: str | Path | None = None, download: bool = False) -> RawData:
    """The digits as (N, 1, 8, 8) float32 in [0, 1] with a stratified 1,437 / 360 split.

    ``root`` and ``download`` are accepted for a uniform interface and ignored: the data are
    bundled with scikit-learn.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / PIXEL_MAX  # (1797, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    indices = np.arange(labels.shape[0])
    train_idx, test_idx = train_test_split(
        indices, test_size=NUM_TEST, stratify=labels, random_state=SPLIT_SEED
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)

    def split(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(images[idx][:, None]))
        return x, torch.from_numpy(labels[idx])

    return RawData(
        name="digits",
        train=split(train_idx),
        test=split(test_idx),
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        meta={
            "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
            "pixel_scale": f"1/{PIXEL_MAX:g}",
            "test_split": {"size": NUM_TEST, "stratified": True, "random_state": SPLIT_SEED},
        },
    )
