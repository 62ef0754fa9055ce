"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) from its official IDX files.

70,000 grayscale 28×28 images of clothing in 10 classes, 60,000 train / 10,000 test, as the
four files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (the uncompressed names are
accepted too).

Where the files are looked for: the data directory ``D`` (see
:func:`topograph.data.download.data_dir`) itself, then ``D/fashion-mnist``.

Integrity:

* if the folder holds a ``SHA256SUMS`` file, every file it lists that is read is checked
  against it (a re-encoded local copy vouches for its own bytes this way);
* otherwise the files are compared with the official checksums and the result is recorded
  in ``meta["verified"]`` (a local copy is trusted, but the record says so);
* downloads (``download=True``) must match the SHA-256 below and the official MD5.

Checksums.  Zalando publishes MD5s only (README of github.com/zalandoresearch/fashion-mnist;
torchvision uses the same values).  The SHA-256 values of the official ``.gz`` files below
are listed identically by two independent public loaders; a download must match both.

Pixels are scaled to [0, 1] and normalised with the usual constants
``(x − 0.2860) / 0.3530`` (the train-set mean and std).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from topograph.data.dataset import RawData
from topograph.data.download import (
    ENV_VAR, data_dir, download as download_file, md5_file, verify_files,
)
from topograph.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from topograph.errors import UsageError

SUBDIR = "fashion-mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
#: official MD5s (zalandoresearch/fashion-mnist README, torchvision.datasets.FashionMNIST)
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: SHA-256 of the official .gz files (not published by Zalando; see the module docstring)
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MEAN = (0.2860,)
STD = (0.3530,)
SIZES = {"train": 60_000, "test": 10_000}


def _find(folder: Path, gz_name: str) -> Path | None:
    for name in (gz_name, gz_name[: -len(".gz")]):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(root: str | Path | None = None) -> tuple[Path, dict[str, Path | None]]:
    """The folder holding (or to receive) the files, and each file's path or ``None``.

    Looks in the data directory and in its ``fashion-mnist/`` subfolder; the folder with
    the most files wins (the subfolder when neither has any).
    """
    base = data_dir(root)
    best: tuple[int, Path, dict[str, Path | None]] | None = None
    for folder in (base, base / SUBDIR):
        found = {key: _find(folder, name) for key, name in FILES.items()}
        count = sum(p is not None for p in found.values())
        if best is None or count > best[0]:
            best = (count, folder, found)
    assert best is not None
    if best[0] == 0:
        folder = base if base.name == SUBDIR else base / SUBDIR
        return folder, {key: None for key in FILES}
    return best[1], best[2]


def fetch(folder: Path, names: list[str]) -> None:
    """Download the named official files into ``folder``, checked by SHA-256 and MD5."""
    for name in names:
        errors = []
        for mirror in MIRRORS:
            try:
                path = download_file(mirror + name, folder / name, OFFICIAL_SHA256[name])
            except UsageError as exc:
                errors.append(str(exc))
                continue
            md5 = md5_file(path)
            if md5 != OFFICIAL_MD5[name]:
                path.unlink(missing_ok=True)
                raise UsageError(f"{path}: MD5 mismatch: expected {OFFICIAL_MD5[name]}, found {md5}")
            break
        else:
            raise UsageError(f"could not download {name}: {' | '.join(errors)}")


def load_raw(root: str | Path | None = None, download: bool = False) -> RawData:
    """Fashion-MNIST as (N, 1, 28, 28) float32 in [0, 1]: 60,000 train, 10,000 test."""
    folder, found = locate(root)
    missing = [FILES[key] for key, path in found.items() if path is None]
    if missing:
        if not download:
            raise UsageError(
                f"Fashion-MNIST files not found in {data_dir(root)} or its {SUBDIR}/ subfolder "
                f"(missing: {', '.join(missing)}); pass root=, set {ENV_VAR}, or use download=True"
            )
        fetch(folder, missing)
        folder, found = locate(folder)
    paths = {key: path for key, path in found.items() if path is not None}
    record = verify_files(folder, list(paths.values()), OFFICIAL_SHA256)

    splits = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], magic=IMAGES_MAGIC)
        labels = read_idx(paths[f"{split}_labels"], magic=LABELS_MAGIC)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise UsageError(f"{paths[f'{split}_images']}: images must be N×28×28, found {images.shape}")
        if labels.shape[0] != images.shape[0]:
            raise UsageError(
                f"{paths[f'{split}_labels']}: {labels.shape[0]} labels for {images.shape[0]} images"
            )
        if labels.size and labels.max() >= len(CLASS_NAMES):
            raise UsageError(f"{paths[f'{split}_labels']}: label {int(labels.max())} outside 0-9")
        x = torch.from_numpy(images).unsqueeze(1).to(torch.float32).div_(255.0)
        splits[split] = (x, torch.from_numpy(labels.astype(np.int64)))

    sizes = {split: int(y.shape[0]) for split, (_, y) in splits.items()}
    return RawData(
        name="fashion-mnist",
        train=splits["train"],
        test=splits["test"],
        num_classes=10,
        class_names=CLASS_NAMES,
        meta={
            "source": "Fashion-MNIST IDX files (Xiao et al. 2017, arXiv:1708.07747)",
            "directory": str(folder),
            "official_sizes": sizes == SIZES,
            **record,
        },
        mean=MEAN,
        std=STD,
    )
