"""MNIST (LeCun, Bottou, Bengio & Haffner 1998) from its official IDX files.

70,000 greyscale 28×28 images of handwritten digits in 10 classes, 60,000 train / 10,000 test
in the original order, as the four files ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
``t10k-labels-idx1-ubyte.gz`` (the uncompressed names are accepted too).  Seeds 001
(topography of SGD vs quasi-Newton solutions) and 002 (rolling ball) ran on it.

Where the files are looked for: the data directory ``D`` (see
:func:`topograph.data.download.data_dir`) itself, then ``D/mnist``.  The reading, the folder
rules and the checks are those of every IDX image source (:mod:`topograph.data.idx_images`).

Integrity is checked on the **decompressed content** of each file, on every load: its SHA-256
must equal :data:`CONTENT_SHA256`, the digests of the original LeCun files.  (The decompressed
files' MD5s published with many loaders — ``6bbc9ace898e44ae57da46a324031adb`` train images,
``a25bea736e30d166cdddb491f175f624`` train labels, ``2646ac647ad5339dbf082846283269ea`` test
images, ``27ae3e4e09519cfbb04c329615203637`` test labels — identify the same bytes.)  The
content, unlike the ``.gz`` bytes, does not depend on the gzip encoder, so the official
download and any re-compressed copy of the same files pass alike.  A file with other content
is refused with one line naming it, unless a ``SHA256SUMS`` file beside it vouches for it (a
subset or a copy of your own).  Downloads (``download=True``; the PyTorch project's S3 mirror
first, then LeCun's site) are checked the same way before they are renamed into place.

Pixels are scaled to [0, 1] and normalised with the usual constants ``(x − 0.1307) / 0.3081``
(the training set's mean and standard deviation).
"""

from __future__ import annotations

from pathlib import Path

from topograph.data.dataset import RawData
from topograph.data.idx_images import FILES, IdxImageSource

SUBDIR = "mnist"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: SHA-256 of the decompressed official files, by the name of the .gz file
CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
CLASS_NAMES = tuple(str(digit) for digit in range(10))
MEAN = (0.1307,)
STD = (0.3081,)
SIZES = {"train": 60_000, "test": 10_000}

#: the data set's description for the shared IDX reader
SOURCE = IdxImageSource(
    name="mnist", title="MNIST",
    citation="MNIST IDX files (LeCun, Bottou, Bengio & Haffner 1998)",
    subdir=SUBDIR, mirrors=MIRRORS, class_names=CLASS_NAMES, mean=MEAN, std=STD, sizes=SIZES,
    content_sha256=CONTENT_SHA256,
)


def locate(root: str | Path | None = None) -> tuple[Path, dict[str, Path | None]]:
    """The folder holding (or to receive) the files, and each file's path or ``None``."""
    return SOURCE.locate(root)


def load_raw(root: str | Path | None = None, download: bool = False) -> RawData:
    """MNIST as (N, 1, 28, 28) float32 in [0, 1]: 60,000 train, 10,000 test."""
    return SOURCE.load_raw(root, download)


__all__ = ["CLASS_NAMES", "CONTENT_SHA256", "FILES", "MEAN", "SOURCE", "STD", "load_raw", "locate"]
