"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) from its official IDX files.

70,000 grayscale 28×28 images of clothing in 10 classes, 60,000 train / 10,000 test, as the
four files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (the uncompressed names are
accepted too).

Where the files are looked for: the data directory ``D`` (see
:func:`topograph.data.download.data_dir`) itself, then ``D/fashion-mnist``.  The reading,
the folder rules and the checks are those of every IDX image source
(:mod:`topograph.data.idx_images`):

* if the folder holds a ``SHA256SUMS`` file, every file it lists that is read is checked
  against it (a re-encoded local copy vouches for its own bytes this way);
* otherwise the files are compared with the official checksums and the result is recorded
  in ``meta["verified"]`` (a local copy is trusted, but the record says so: no checksum of
  the official files' decompressed content is published to check it by);
* downloads (``download=True``) must match the SHA-256 below and the official MD5.

Checksums.  Zalando publishes MD5s only (README of github.com/zalandoresearch/fashion-mnist;
torchvision uses the same values).  The SHA-256 values of the official ``.gz`` files below
are listed identically by two independent public loaders; a download must match both.

Pixels are scaled to [0, 1] and normalised with the usual constants
``(x − 0.2860) / 0.3530`` (the train-set mean and std).
"""

from __future__ import annotations

from pathlib import Path

from topograph.data.dataset import RawData
from topograph.data.idx_images import FILES, IdxImageSource

SUBDIR = "fashion-mnist"
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

#: the data set's description for the shared IDX reader
SOURCE = IdxImageSource(
    name="fashion-mnist", title="Fashion-MNIST",
    citation="Fashion-MNIST IDX files (Xiao et al. 2017, arXiv:1708.07747)",
    subdir=SUBDIR, mirrors=MIRRORS, class_names=CLASS_NAMES, mean=MEAN, std=STD, sizes=SIZES,
    gz_sha256=OFFICIAL_SHA256, gz_md5=OFFICIAL_MD5,
)


def locate(root: str | Path | None = None) -> tuple[Path, dict[str, Path | None]]:
    """The folder holding (or to receive) the files, and each file's path or ``None``."""
    return SOURCE.locate(root)


def load_raw(root: str | Path | None = None, download: bool = False) -> RawData:
    """Fashion-MNIST as (N, 1, 28, 28) float32 in [0, 1]: 60,000 train, 10,000 test."""
    return SOURCE.load_raw(root, download)


__all__ = ["CLASS_NAMES", "FILES", "MEAN", "SOURCE", "STD", "load_raw", "locate"]
