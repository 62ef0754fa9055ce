"""CIFAR-10 on small files the tests write in the official format (the data set is not available
here): pixels and labels round trip, normalisation, malicious or malformed batches refused, safe
archive extraction, download and extraction from a local mirror."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import RunsCode, write_cifar10
from topograph.data import cifar10, load_dataset
from topograph.errors import UsageError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("str_keys,protocol", [(False, 2), (True, 4)])
def test_cifar_round_trip(tmp_path, str_keys, protocol):
    written = write_cifar10(tmp_path / "cifar-10-batches-py", str_keys=str_keys, protocol=protocol)
    raw = load_dataset("cifar10", root=tmp_path, normalize=False)
    assert (raw.n("train"), raw.n("test"), raw.input_shape) == (20, 4, (3, 32, 32))
    assert raw.class_names == cifar10.CLASS_NAMES
    # pixel (c, i, j) of image n is column c*1024 + i*32 + j of the batch row
    c, i, j = np.indices((3, 32, 32))
    column = c * 1024 + i * 32 + j
    data = np.concatenate([written[name][0] for name in cifar10.TRAIN_BATCHES])
    labels = sum((written[name][1] for name in cifar10.TRAIN_BATCHES), [])
    expected = np.stack([row[column] for row in data]).astype(np.float32) / 255
    torch.testing.assert_close(raw.train[0], torch.from_numpy(expected), rtol=0, atol=1e-6)
    assert raw.train[1].tolist() == labels and raw.train[1].dtype == torch.int64

    norm = load_dataset("cifar10", root=tmp_path)
    mean = torch.tensor(cifar10.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cifar10.STD).view(1, 3, 1, 1)
    torch.testing.assert_close(norm.test[0], (raw.test[0] - mean) / std)
    assert norm.meta["normalization"]["mean"] == list(cifar10.MEAN)


def test_cifar_malicious_batch_and_bad_shapes(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "marker"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": RunsCode(marker)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(UsageError, match="data_batch_3: refused to unpickle global"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()
    def write_batch(data, labels):
        (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))

    write_batch(np.zeros((2, 100), np.uint8), [0, 1])
    shape_error = r"data_batch_3: 'data' must be a uint8 array of shape \(N, 3072\), found uint8 \(2, 100\)"
    with pytest.raises(UsageError, match=shape_error):
        load_dataset("cifar10", root=tmp_path)
    write_batch(np.zeros((2, 3072), np.uint8), [0, 12])
    with pytest.raises(UsageError, match="labels must lie in 0-9"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(UsageError, match="CIFAR-10 batches .* not found .*download=True"):
        load_dataset("cifar10", root=tmp_path / "nothing")


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def test_cifar_archive_extraction_is_safe(tmp_path):
    target = tmp_path / "target"
    for name, kind in [("../escape.txt", tarfile.REGTYPE), ("/abs.txt", tarfile.REGTYPE),
                       ("cifar-10-batches-py/link", tarfile.SYMTYPE), ("elsewhere/file", tarfile.REGTYPE)]:
        info = tarfile.TarInfo(name)
        info.type = kind
        content = b"x" if kind == tarfile.REGTYPE else None
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        else:
            info.size = 1
        archive = _tar(tmp_path / "evil.tar.gz", [(info, content)])
        with pytest.raises(UsageError, match="refused unsafe or unexpected archive member"):
            cifar10.extract_archive(archive, target)
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs.txt").exists()
    assert not any(target.rglob("*"))  # nothing extracted, staging removed


def test_cifar_download_and_extract_from_a_local_mirror(http_root, tmp_path, monkeypatch):
    served, url = http_root
    source = tmp_path / "src"
    write_cifar10(source / "cifar-10-batches-py", n=2)
    with tarfile.open(served / cifar10.ARCHIVE, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    blob = (served / cifar10.ARCHIVE).read_bytes()
    monkeypatch.setattr(cifar10, "URL", url + cifar10.ARCHIVE)
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", sha256(blob))
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(blob).hexdigest())
    ds = load_dataset("cifar10", root=tmp_path / "data", download=True, flatten=True)
    assert (ds.n("train"), ds.n("test"), ds.input_shape) == (10, 2, (3072,))
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
