"""CIFAR-10 (Krizhevsky 2009) from the official "python version" batches.

60,000 colour 32×32 images in 10 classes, 50,000 train / 10,000 test, distributed as
``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/`` with ``data_batch_1`` …
``data_batch_5``, ``test_batch`` and ``batches.meta``.  Each batch is a (Python 2) pickle of a
dict: ``b"data"`` a uint8 array (N, 3072) — 1,024 red, then 1,024 green, then 1,024 blue
values, each plane row-major 32×32 — ``b"labels"`` a list of N ints in 0–9, plus
``b"batch_label"`` and ``b"filenames"``; ``batches.meta`` has ``b"label_names"``.

The pickles are read with :func:`topograph.data.safe_pickle.safe_load` — never plain
``pickle`` — so a tampered batch cannot run code.

Where the batches are looked for: in the data directory ``D``
(:func:`topograph.data.download.data_dir`): ``D`` itself, ``D/cifar-10-batches-py``,
``D/cifar10`` and ``D/cifar10/cifar-10-batches-py``.  ``download=True`` fetches the
official tarball into ``D/cifar10`` (checked against SHA-256 and the official MD5) and
extracts it safely (regular files under ``cifar-10-batches-py/`` only; no absolute paths,
no ``..``, no links).  A ``SHA256SUMS`` file beside the batches is honoured.

Normalisation: per channel ``(x − μ_c) / σ_c`` with μ = (0.4914, 0.4822, 0.4465),
σ = (0.2470, 0.2435, 0.2616), the train-set statistics in common use.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from topograph.data.dataset import RawData
from topograph.data.download import ENV_VAR, data_dir, md5_file, verify_files
from topograph.data.download import download as download_file
from topograph.data.safe_pickle import safe_load
from topograph.errors import UsageError

BATCH_DIR = "cifar-10-batches-py"
SUBDIR = "cifar10"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
#: official MD5 (https://www.cs.toronto.edu/~kriz/cifar.html)
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
#: SHA-256 of the official archive, as pinned by Keras' cifar10 loader (file_hash=)
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
SIZES = {"train": 50_000, "test": 10_000}
PIXELS = 3 * 32 * 32


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH))


def locate(root: str | Path | None = None) -> Path | None:
    """The folder holding the batches, or ``None`` if none of the candidates has them all."""
    base = data_dir(root)
    for folder in (base, base / BATCH_DIR, base / SUBDIR, base / SUBDIR / BATCH_DIR):
        if _complete(folder):
            return folder
    return None


def _member_ok(member: tarfile.TarInfo, target: Path) -> bool:
    """A member is extracted only if it is a plain file or folder inside ``BATCH_DIR/``."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not name.parts or name.parts[0] != BATCH_DIR:
        return False
    if not (member.isfile() or member.isdir()):
        return False
    resolved = (target / Path(*name.parts)).resolve()
    return resolved.is_relative_to(target.resolve())


def extract_archive(archive: Path, target: Path) -> Path:
    """Safely extract ``BATCH_DIR/`` of ``archive`` into ``target``; return the batch folder.

    Members outside ``BATCH_DIR/``, with absolute paths or ``..``, links and device files
    are refused (UsageError).  Extraction goes to a temporary folder in ``target`` that is
    renamed into place at the end.
    """
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extract-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                if not _member_ok(member, staging):
                    raise UsageError(
                        f"{archive}: refused unsafe or unexpected archive member {member.name!r}"
                    )
            for member in members:
                out = staging / Path(*PurePosixPath(member.name).parts)
                if member.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, open(out, "wb") as handle:
                    shutil.copyfileobj(source, handle)
        final = target / BATCH_DIR
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / BATCH_DIR, final)
        return final
    except tarfile.TarError as exc:
        raise UsageError(f"{archive}: not a readable tar archive ({exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(root: str | Path | None = None) -> Path:
    """Download the official archive into ``D/cifar10`` (checked), extract it, return the folder."""
    target = data_dir(root) / SUBDIR
    archive = target / ARCHIVE
    if not archive.is_file():
        download_file(URL, archive, ARCHIVE_SHA256)
    md5 = md5_file(archive)
    if md5 != ARCHIVE_MD5:
        raise UsageError(f"{archive}: MD5 mismatch: expected {ARCHIVE_MD5}, found {md5}; delete it and retry")
    return extract_archive(archive, target)


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, (bytes, bytearray)) else str(value)


def _str_keys(obj: Any, path: Path) -> dict[str, Any]:
    """A batch dict with ``bytes`` keys (official, Python 2) or ``str`` keys, as str keys."""
    if not isinstance(obj, dict):
        raise UsageError(f"{path}: a CIFAR-10 batch must be a dict, found {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch as ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``, validated."""
    path = Path(path)
    batch = _str_keys(safe_load(path), path)
    for key in ("data", "labels"):
        if key not in batch:
            raise UsageError(f"{path}: missing key {key!r} (a CIFAR-10 batch has 'data' and 'labels')")
    data = batch["data"]
    is_array = isinstance(data, np.ndarray)
    if not is_array or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        found = f"{data.dtype} {data.shape}" if is_array else type(data).__name__
        raise UsageError(f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}), found {found}")
    labels = batch["labels"]
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise UsageError(f"{path}: 'labels' must be a list of ints, found {type(labels).__name__}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: 'labels' must be a list of ints") from None
    if labels.shape[0] != data.shape[0]:
        raise UsageError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise UsageError(f"{path}: labels must lie in 0-9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """``label_names`` of ``batches.meta`` (10 names)."""
    path = Path(path)
    meta = _str_keys(safe_load(path), path)
    names = meta.get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != len(CLASS_NAMES):
        raise UsageError(f"{path}: 'label_names' must be a list of {len(CLASS_NAMES)} names")
    return tuple(_text(n) for n in names)


def load_raw(root: str | Path | None = None, download: bool = False) -> RawData:
    """CIFAR-10 as (N, 3, 32, 32) float32 in [0, 1] (50,000 train, 10,000 test officially)."""
    folder = locate(root)
    if folder is None:
        if not download:
            raise UsageError(
                f"CIFAR-10 batches ({BATCH_DIR}/data_batch_1..5, test_batch) not found in "
                f"{data_dir(root)} or its {BATCH_DIR}/, {SUBDIR}/ subfolders; pass root=, set {ENV_VAR}, "
                "or use download=True"
            )
        folder = fetch(root)
    files = [folder / name for name in (*TRAIN_BATCHES, TEST_BATCH)]
    has_meta = (folder / META_FILE).is_file()
    record = verify_files(folder, files + ([folder / META_FILE] if has_meta else []))

    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    train_x = np.concatenate([x for x, _ in parts])
    train_y = np.concatenate([y for _, y in parts])
    test_x, test_y = read_batch(folder / TEST_BATCH)
    class_names = read_class_names(folder / META_FILE) if has_meta else CLASS_NAMES

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x.astype(np.float32)).div_(255.0), torch.from_numpy(y)

    sizes = {"train": int(train_y.shape[0]), "test": int(test_y.shape[0])}
    return RawData(
        name="cifar10",
        train=tensors(train_x, train_y),
        test=tensors(test_x, test_y),
        num_classes=len(CLASS_NAMES),
        class_names=class_names,
        meta={
            "source": "CIFAR-10 python batches (Krizhevsky 2009)",
            "directory": str(folder),
            "official_sizes": sizes == SIZES,
            **record,
        },
        mean=MEAN,
        std=STD,
    )
