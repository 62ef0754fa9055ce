"""Fashion-MNIST: tiny files in the official layout (checksums, missing files, a local mirror)
and the project's real copy (sizes, class counts, normalisation, an independent gzip decode, a
deterministic disjoint validation split)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import data_root
from topograph.data import fashion_mnist, load_dataset
from topograph.data.download import ENV_VAR, read_sha256sums
from topograph.data.idx import read_idx, write_idx
from topograph.errors import UsageError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FASHION_DIR = (data_root() or Path("no-data-folder")) / "fashion-mnist"


def _write_fake_fashion(folder: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, bytes]:
    """Tiny files in the official layout; returns their bytes by name."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    return {name: write_idx(folder / name, array).read_bytes() for name, array in arrays.items()}


def test_fake_fashion_layout_checksums_and_missing_files(tmp_path, monkeypatch):
    files = _write_fake_fashion(tmp_path / "fashion-mnist")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))  # the parent of fashion-mnist/
    ds = load_dataset("fashion-mnist", normalize=False)
    assert (ds.n("train"), ds.n("test"), ds.input_shape) == (30, 10, (1, 28, 28))
    assert ds.meta["verified"] == "none" and not ds.meta["official_sizes"]
    images = read_idx(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    torch.testing.assert_close(ds.test[0][:, 0] * 255, torch.from_numpy(images).float(), rtol=0, atol=1e-4)

    sums = tmp_path / "fashion-mnist" / "SHA256SUMS"
    sums.write_text("".join(f"{sha256(b)}  {name}\n" for name, b in files.items()))
    assert read_sha256sums(sums)["t10k-labels-idx1-ubyte.gz"] == sha256(files["t10k-labels-idx1-ubyte.gz"])
    assert load_dataset("fashion-mnist", root=tmp_path / "fashion-mnist").meta["verified"] == "SHA256SUMS"
    sums.write_text(sums.read_text().replace(sha256(files["train-labels-idx1-ubyte.gz"]), "ab" * 32))
    with pytest.raises(UsageError, match="train-labels-idx1-ubyte.gz: SHA-256 mismatch with .*SHA256SUMS"):
        load_dataset("fashion-mnist")

    empty = tmp_path / "empty"
    with pytest.raises(UsageError) as info:
        load_dataset("fashion-mnist", root=empty)
    assert str(empty) in str(info.value) and ENV_VAR in str(info.value) and "download=True" in str(info.value)


def test_fashion_download_from_a_local_mirror(http_root, tmp_path, monkeypatch):
    served, url = http_root
    files = _write_fake_fashion(served, seed=1)
    md5s = {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
    source = dataclasses.replace(fashion_mnist.SOURCE, mirrors=("http://127.0.0.1:9/unreachable/", url),
                                 gz_sha256={n: sha256(b) for n, b in files.items()}, gz_md5=md5s)
    monkeypatch.setattr(fashion_mnist, "SOURCE", source)
    root = tmp_path / "data"
    ds = load_dataset("fashion-mnist", root=root, download=True, normalize=False)
    assert ds.n("train") == 30 and ds.meta["verified"] == "official"
    assert sorted(p.name for p in (root / "fashion-mnist").iterdir()) == sorted(files)
    # a tampered mirror: every download fails its checksum, nothing is left behind
    monkeypatch.setattr(fashion_mnist, "SOURCE", dataclasses.replace(source, gz_sha256={n: "0" * 64 for n in files}))
    with pytest.raises(UsageError, match="SHA-256 mismatch"):
        load_dataset("fashion-mnist", root=tmp_path / "other", download=True)
    assert not any((tmp_path / "other").rglob("*.gz"))


@pytest.fixture(scope="module")
def fashion():
    if not FASHION_DIR.is_dir():
        if os.environ.get("CI") == "true":  # CI always has ../shared/data: a missing copy is a failure
            pytest.fail(f"Fashion-MNIST not found at {FASHION_DIR}")
        pytest.skip(f"Fashion-MNIST not found at {FASHION_DIR} (set TOPOGRAPH_DATA_DIR or put ../shared/data "
                    "beside the repository)")
    return load_dataset("fashion-mnist", root=FASHION_DIR)


@pytest.mark.slow
def test_real_fashion_mnist(fashion):
    assert (fashion.n("train"), fashion.n("test")) == (60_000, 10_000)
    assert fashion.input_shape == (1, 28, 28) and fashion.class_names[9] == "Ankle boot"
    assert torch.equal(torch.bincount(fashion.train[1]), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(fashion.test[1]), torch.full((10,), 1000))
    x = fashion.train[0].double()
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1.0) < 1e-3
    assert fashion.meta["verified"] == "SHA256SUMS" and fashion.meta["official_sizes"]
    # pixels equal an independent decode of the gzip file (header of 16 bytes, then uint8)
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz") as handle:
        raw = np.frombuffer(handle.read(), dtype=np.uint8, offset=16).reshape(10_000, 28, 28)
    expected = (torch.from_numpy(raw.astype(np.float32)) / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(fashion.test[0][:, 0], expected, rtol=0, atol=1e-5)
    # the parent folder and the environment variable lead to the same files
    folder, found = fashion_mnist.locate(FASHION_DIR.parent)
    assert folder == FASHION_DIR and all(found.values())


@pytest.mark.slow
def test_real_fashion_val_split_is_deterministic_and_disjoint(fashion):
    a = load_dataset("fashion-mnist", root=FASHION_DIR, val_size=0.1, seed=7, flatten=True)
    b = load_dataset("fashion-mnist", root=FASHION_DIR, val_size=0.1, seed=7, flatten=True)
    assert (a.n("train"), a.n("val")) == (54_000, 6_000)
    assert torch.equal(a.val[0], b.val[0]) and torch.equal(a.val[1], b.val[1])
    # the copy has no exact duplicate images (its README), so rows identify samples
    val_rows = {row.tobytes() for row in a.val[0].numpy()}
    train_rows = {row.tobytes() for row in a.train[0].numpy()}
    assert len(val_rows) == 6_000 and not (val_rows & train_rows)
    counts = torch.bincount(a.train[1], minlength=10) + torch.bincount(a.val[1], minlength=10)
    assert torch.equal(counts, torch.full((10,), 6000))
