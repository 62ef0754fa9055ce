"""Tests of the file formats and fetching of topograph.data: IDX, downloads, Fashion-MNIST,
the restricted unpickler and CIFAR-10 batches.  No real network: downloads come from a
tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from topograph.data import load_dataset
from topograph.data import cifar10, fashion_mnist
from topograph.data.download import ENV_VAR, data_dir, download, read_sha256sums
from topograph.data.idx import read_idx, read_idx_header, write_idx
from topograph.data.safe_pickle import safe_load, safe_loads
from topograph.errors import UsageError

from tests.helpers import data_root

#: the real Fashion-MNIST copy: under $TOPOGRAPH_DATA_DIR, else ../shared/data (tests.helpers.data_root)
FASHION_DIR = (data_root() or Path("no-data-folder")) / "fashion-mnist"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ IDX
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(5, 3, 4)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and np.array_equal(back, array)
    assert read_idx_header(path)[1] == (5, 3, 4)


def test_idx_bytes_match_the_specification(tmp_path):
    """The writer's bytes equal an IDX file assembled by hand from the format description."""
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    by_hand = struct.pack(">i", 2049) + struct.pack(">I", 5) + bytes([3, 1, 4, 1, 5])
    assert write_idx(tmp_path / "l", labels).read_bytes() == by_hand
    ints = np.array([[1, -2]], dtype=np.int32)
    by_hand = bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 1, 2) + struct.pack(">ii", 1, -2)
    assert write_idx(tmp_path / "i", ints).read_bytes() == by_hand
    (tmp_path / "h").write_bytes(by_hand)
    assert np.array_equal(read_idx(tmp_path / "h"), ints)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_truncated_file_gives_one_line_error(tmp_path, compress):
    data = struct.pack(">iIII", 2051, 60000, 28, 28) + bytes(1000)
    path = tmp_path / ("t.gz" if compress else "t")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(UsageError) as info:
        read_idx(path, magic=2051)
    message = str(info.value)
    assert message == f"{path}: truncated: expected 47040000 payload bytes, found 1000"
    assert "\n" not in message


def test_idx_bad_magic_and_trailing_bytes(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(struct.pack(">iI", 0x1234, 1) + b"\x00")
    expected = r"bad: bad magic number 0x00001234, expected an IDX file \(2049 labels / 2051 images\)"
    with pytest.raises(UsageError, match=expected):
        read_idx(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(UsageError, match="bad magic number 0x89504e47"):
        read_idx(path)
    labels = write_idx(tmp_path / "labels", np.zeros(4, np.uint8))
    with pytest.raises(UsageError, match="bad magic number 0x00000801, expected 2051"):
        read_idx(labels, magic=2051)
    labels.write_bytes(labels.read_bytes() + b"xy")
    with pytest.raises(UsageError, match="2 trailing bytes"):
        read_idx(labels)
    whole = gzip.compress(struct.pack(">iI", 2049, 3000) + bytes(3000))
    (tmp_path / "cut.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UsageError, match="cut.gz: (corrupt gzip|truncated)"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(UsageError, match="no such IDX file"):
        read_idx(tmp_path / "missing")


# ------------------------------------------------------------------------------ downloads
@pytest.fixture
def http_root(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_sha256_and_is_atomic(http_root, tmp_path):
    served, url = http_root
    payload = os.urandom(3 * (1 << 20) + 17)  # several 1 MiB blocks
    (served / "blob.bin").write_bytes(payload)
    dest = tmp_path / "out" / "blob.bin"
    assert download(url + "blob.bin", dest, _sha256(payload), progress=False) == dest
    assert dest.read_bytes() == payload

    wrong = "0" * 64
    bad_dest = tmp_path / "out" / "bad.bin"
    with pytest.raises(UsageError) as info:
        download(url + "blob.bin", bad_dest, wrong, progress=False)
    message = str(info.value)
    assert str(bad_dest) in message and wrong in message and _sha256(payload) in message
    assert not bad_dest.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]  # no temp files left

    with pytest.raises(UsageError, match="download of .*missing.bin failed"):
        download(url + "missing.bin", tmp_path / "out" / "m.bin", wrong, progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert data_dir("/somewhere") == Path("/somewhere")
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    assert data_dir() == Path("~/.cache/topograph").expanduser()


# ---------------------------------------------------------------------------- Fashion-MNIST
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
    sums.write_text("".join(f"{_sha256(b)}  {name}\n" for name, b in files.items()))
    assert read_sha256sums(sums)["t10k-labels-idx1-ubyte.gz"] == _sha256(files["t10k-labels-idx1-ubyte.gz"])
    assert load_dataset("fashion-mnist", root=tmp_path / "fashion-mnist").meta["verified"] == "SHA256SUMS"
    sums.write_text(sums.read_text().replace(_sha256(files["train-labels-idx1-ubyte.gz"]), "ab" * 32))
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
                                 gz_sha256={n: _sha256(b) for n, b in files.items()}, gz_md5=md5s)
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


# ------------------------------------------------------------------- restricted unpickler
class _RunsCode:
    """Unpickling this would call ``os.system`` (touching a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WritesFile:
    """Unpickling this would call ``builtins.exec`` to write a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [_RunsCode, _WritesFile])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "marker"
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": payload(marker), b"batch_label": b"x"}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UsageError) as info:
        safe_load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to unpickle global ")
    assert ("system" in message) if payload is _RunsCode else ("exec" in message)
    assert not marker.exists()


def test_unpickler_refuses_object_arrays_and_garbage(tmp_path):
    with pytest.raises(UsageError, match="not a valid data pickle"):
        safe_loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), source="obj")
    with pytest.raises(UsageError, match="refused to unpickle global collections.OrderedDict"):
        safe_loads(pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2))
    with pytest.raises(UsageError, match="not a valid data pickle"):
        safe_loads(b"\x80\x02garbage", source="g")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unpickler_reads_arrays_and_plain_values(protocol):
    value = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2, 3], b"e": b"",
             "f": np.float32(1.5), "t": (1.0, None, True), "s": "text", "b": b"\x00\xffbytes"}
    back = safe_loads(pickle.dumps(value, protocol=protocol))
    assert np.array_equal(back[b"data"], value[b"data"]) and back[b"data"].dtype == np.uint8
    assert {k: v for k, v in back.items() if k != b"data"} == {k: v for k, v in value.items() if k != b"data"}


# ------------------------------------------------------------------------------- CIFAR-10
def _write_cifar(folder: Path, n: int = 4, seed: int = 0, str_keys: bool = False, protocol: int = 2) -> dict:
    """Batches in the official layout; returns {file name: (data, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    written = {}
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {key("batch_label"): b"batch " + name.encode(), key("labels"): labels, key("data"): data,
                 key("filenames"): [f"img_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, labels)
    meta = {key("label_names"): [c.encode() for c in cifar10.CLASS_NAMES], key("num_vis"): 3072}
    (folder / cifar10.META_FILE).write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.mark.parametrize("str_keys,protocol", [(False, 2), (True, 4)])
def test_cifar_round_trip(tmp_path, str_keys, protocol):
    written = _write_cifar(tmp_path / "cifar-10-batches-py", str_keys=str_keys, protocol=protocol)
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
    _write_cifar(folder)
    marker = tmp_path / "marker"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _RunsCode(marker)}
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
    _write_cifar(source / "cifar-10-batches-py", n=2)
    with tarfile.open(served / cifar10.ARCHIVE, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    blob = (served / cifar10.ARCHIVE).read_bytes()
    monkeypatch.setattr(cifar10, "URL", url + cifar10.ARCHIVE)
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", _sha256(blob))
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(blob).hexdigest())
    ds = load_dataset("cifar10", root=tmp_path / "data", download=True, flatten=True)
    assert (ds.n("train"), ds.n("test"), ds.input_shape) == (10, 2, (3072,))
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
