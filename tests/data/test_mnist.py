"""MNIST (topograph.data.mnist through the shared IDX image source), checked against the
independent facts of the project's copy (sizes, per-class counts, first labels, the usual
normalisation constants, a plain gzip decode), its content checksums — encoder-independent, so
re-compressed and uncompressed copies pass and damaged or foreign files fail with one line
naming the file — and downloads from a local mirror."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from topograph.data import load_dataset, mnist
from topograph.data.idx import content_sha256, read_idx, read_idx_and_sha256, write_idx
from topograph.errors import UsageError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def mnist_dir(data_dir: Path) -> Path:
    folder = data_dir / "mnist"
    if not folder.is_dir():
        pytest.skip(f"no MNIST copy in {data_dir}")
    return folder


@pytest.mark.slow
def test_real_mnist(mnist_dir):
    raw = load_dataset("mnist", normalize=False)          # found in $TOPOGRAPH_DATA_DIR/mnist
    assert (raw.n("train"), raw.n("test"), raw.input_shape) == (60_000, 10_000, (1, 28, 28))
    assert torch.bincount(raw.train[1]).tolist() == TRAIN_COUNTS
    assert torch.bincount(raw.test[1]).tolist() == TEST_COUNTS
    assert raw.train[1][:5].tolist() == [5, 0, 4, 1, 9] and raw.test[1][:5].tolist() == [7, 2, 1, 0, 4]
    assert raw.meta["verified"] == "official" and raw.meta["official_sizes"]
    assert raw.meta["content_sha256"] == {name: digest for name, digest in mnist.CONTENT_SHA256.items()}
    # the usual normalisation constants are the training set's mean and std
    x = raw.train[0].double()
    assert float(x.mean()) == pytest.approx(0.1307, abs=5e-5) and float(x.std()) == pytest.approx(0.3081, abs=5e-5)
    # pixels equal a plain decode of the gzip file (16 header bytes, then uint8)
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as handle:
        pixels = np.frombuffer(handle.read(), dtype=np.uint8, offset=16).reshape(10_000, 28, 28)
    norm = load_dataset("mnist", root=mnist_dir, limit_test=0)
    expected = (torch.from_numpy(pixels.astype(np.float32)) / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(norm.test[0][:, 0], expected, rtol=0, atol=1e-5)
    assert norm.meta["normalization"] == {"mean": [0.1307], "std": [0.3081], "estimated": False}
    # the parent folder and the folder itself lead to the same files
    assert mnist.locate(mnist_dir.parent)[0] == mnist_dir == mnist.locate(mnist_dir)[0]


def test_content_checksum_does_not_depend_on_the_gzip_encoder(mnist_dir, tmp_path):
    """A re-compressed copy and an uncompressed copy pass the content check: 'official'."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (folder / name).symlink_to(mnist_dir / name)
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as handle:
        content = handle.read()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(content)              # uncompressed name
    assert hashlib.sha256(content).hexdigest() == mnist.CONTENT_SHA256["t10k-labels-idx1-ubyte.gz"]
    ds = load_dataset("mnist", root=tmp_path, limit_train=10)
    assert ds.meta["verified"] == "official" and ds.test[1][:5].tolist() == [7, 2, 1, 0, 4]
    (folder / "t10k-labels-idx1-ubyte").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    assert content_sha256(folder / "t10k-labels-idx1-ubyte.gz") == mnist.CONTENT_SHA256["t10k-labels-idx1-ubyte.gz"]
    assert load_dataset("mnist", root=folder, limit_train=10).meta["verified"] == "official"


def _write_small_mnist(folder: Path, n: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n // 2, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n // 2) % 10).astype(np.uint8))


def test_a_damaged_or_foreign_file_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "mnist"
    _write_small_mnist(folder)
    with pytest.raises(UsageError) as info:
        load_dataset("mnist", root=tmp_path)
    message = str(info.value)
    path = folder / "train-images-idx3-ubyte.gz"
    digest = read_idx_and_sha256(path)[1]
    assert message == (
        f"{path}: not the official MNIST file: the SHA-256 of its decompressed content is {digest}, "
        f"expected {mnist.CONTENT_SHA256['train-images-idx3-ubyte.gz']}; delete it and load with "
        f"download=True, or vouch for a copy of your own in {folder / 'SHA256SUMS'}"
    )
    # a truncated file: the IDX reader names it
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(UsageError) as info:
        load_dataset("mnist", root=folder)
    assert str(info.value) == (f"{path}: truncated: expected {20 * 784} payload bytes, found {20 * 784 - 100}; "
                               "re-download the file (download=True) or point TOPOGRAPH_DATA_DIR at a good copy")


def test_sha256sums_vouches_for_a_copy_of_your_own(tmp_path):
    folder = tmp_path / "mnist"
    _write_small_mnist(folder)
    files = sorted(folder.iterdir())
    sums = folder / "SHA256SUMS"
    sums.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in files))
    ds = load_dataset("mnist", root=folder, normalize=False)
    assert (ds.n("train"), ds.n("test")) == (20, 10) and ds.meta["verified"] == "SHA256SUMS"
    assert not ds.meta["official_sizes"]
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    torch.testing.assert_close(ds.test[0][:, 0] * 255, torch.from_numpy(images).float(), rtol=0, atol=1e-4)
    # a listed file that changed is a mismatch with SHA256SUMS, naming it
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    with pytest.raises(UsageError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 mismatch with .*SHA256SUMS"):
        load_dataset("mnist", root=folder)


def test_missing_files_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(UsageError) as info:
        load_dataset("mnist", root=tmp_path / "nothing")
    message = str(info.value)
    assert message.startswith(f"MNIST files not found in {tmp_path / 'nothing'} or its mnist/ subfolder")
    assert "TOPOGRAPH_DATA_DIR" in message and "download=True" in message


@pytest.mark.slow
def test_download_from_a_local_mirror_checks_the_content(http_root, mnist_dir, tmp_path, monkeypatch):
    served, url = http_root
    for name in mnist.CONTENT_SHA256:                           # the official content, other gzip bytes
        with gzip.open(mnist_dir / name) as handle:
            (served / name).write_bytes(gzip.compress(handle.read(), compresslevel=1))
    monkeypatch.setattr(mnist, "SOURCE", dataclasses.replace(
        mnist.SOURCE, mirrors=("http://127.0.0.1:9/unreachable/", url)))
    ds = load_dataset("mnist", root=tmp_path / "data", download=True, limit_train=5, limit_test=5)
    assert ds.meta["verified"] == "official" and ds.meta["directory"] == str(tmp_path / "data" / "mnist")
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(mnist.CONTENT_SHA256)
    # a mirror serving other content: refused before anything appears under the real name
    _write_small_mnist(served)
    with pytest.raises(UsageError) as info:
        load_dataset("mnist", root=tmp_path / "other", download=True)
    assert "SHA-256 mismatch of the decompressed content" in str(info.value) and "\n" not in str(info.value)
    assert not any((tmp_path / "other").rglob("*ubyte*"))


def test_unchanged_files_are_read_and_checked_once_per_process(tmp_path, monkeypatch):
    """A second load of the same, unchanged files reuses the checked arrays (no decompression,
    no hashing) and still hands out fresh tensors; a file written since is read and checked
    again — a damaged one is refused as before."""
    from topograph.data import idx_images

    folder = tmp_path / "mnist"
    _write_small_mnist(folder)
    files = sorted(folder.iterdir())
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                                               for p in files))
    reads = []
    real = idx_images.read_idx_and_sha256
    monkeypatch.setattr(idx_images, "read_idx_and_sha256", lambda path, **kw: reads.append(path) or real(path, **kw))
    first = load_dataset("mnist", root=folder, normalize=False)
    assert len(reads) == 4
    first.train[0].zero_()                                   # the caller owns its tensors
    again = load_dataset("mnist", root=folder, normalize=False)
    assert len(reads) == 4                                   # nothing read again
    images = read_idx(folder / "train-images-idx3-ubyte.gz")
    torch.testing.assert_close(again.train[0][:, 0] * 255, torch.from_numpy(images).float(), rtol=0, atol=1e-4)
    assert again.meta["verified"] == "SHA256SUMS" and again.meta["sha256"] == first.meta["sha256"]
    # a file written since the first load (not vouched for any more): read again, refused
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    with pytest.raises(UsageError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 mismatch with .*SHA256SUMS"):
        load_dataset("mnist", root=folder)
    assert len(reads) > 4
