"""The IDX reader and writer against the format description: round trips of every type, bytes
assembled by hand, and one-line errors for truncated, foreign or damaged files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from topograph.data.idx import read_idx, read_idx_header, write_idx
from topograph.errors import UsageError


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
    assert message == (f"{path}: truncated: expected 47040000 payload bytes, found 1000; "
                       "re-download the file (download=True) or point TOPOGRAPH_DATA_DIR at a good copy")
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
