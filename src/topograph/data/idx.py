"""Reader and writer of IDX files, the format of MNIST and Fashion-MNIST.

An IDX file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is

* a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, read big-endian as one int32
  (``2049 = 0x00000801``: ubyte labels, 1-D; ``2051 = 0x00000803``: ubyte images, 3-D);
* ``ndim`` big-endian uint32 sizes;
* the payload: ``prod(sizes)`` values of the dtype, big-endian, row-major.

Files may be gzip-compressed (detected by the gzip magic bytes, not by the name).  The
reader validates the magic number, the header and the exact payload length, and reports any
problem as a one-line :class:`~topograph.errors.UsageError` naming the file.

:func:`read_idx_and_sha256` also returns the SHA-256 of the *decompressed* bytes (header and
payload) from the same pass, and :func:`content_sha256` hashes them without parsing: a
checksum of the content does not depend on the gzip encoder, so an official download and a
re-compressed copy of the same file give the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from topograph.errors import UsageError
from topograph.io import temp_file_beside

#: IDX dtype code -> numpy dtype (big-endian as stored in the file)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051
_GZIP_MAGIC = b"\x1f\x8b"
_EXPECTED = "expected an IDX file (2049 labels / 2051 images)"
#: the way back from a damaged data file, ending every such message
_WAY_BACK = "re-download the file (download=True) or point TOPOGRAPH_DATA_DIR at a good copy"


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as probe:
        head = probe.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")  # type: ignore[return-value]


def _read_exactly(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; return the number of bytes read (less only at EOF)."""
    filled = 0
    while filled < len(buffer):
        n = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled


def read_idx_header(path: str | Path) -> tuple[int, tuple[int, ...]]:
    """``(magic, sizes)`` of an IDX file, validated, without reading the payload."""
    path = Path(path)
    with _open(path) as stream:
        magic, sizes, _ = _read_header(stream, path)
        return magic, sizes


def content_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's decompressed bytes (of the bytes themselves if not gzip)."""
    path = Path(path)
    h = hashlib.sha256()
    try:
        with _open(path) as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UsageError(f"{path}: corrupt gzip stream ({exc}); {_WAY_BACK}") from None
    return h.hexdigest()


def _read_header(stream: BinaryIO, path: Path) -> tuple[int, tuple[int, ...], bytes]:
    head = stream.read(4)
    if len(head) < 4:
        raise UsageError(f"{path}: too short for an IDX header ({len(head)} bytes); {_EXPECTED}; {_WAY_BACK}")
    magic = struct.unpack(">i", head)[0]
    zero, code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or code not in IDX_DTYPES or ndim == 0:
        raise UsageError(f"{path}: bad magic number 0x{magic & 0xFFFFFFFF:08x}, {_EXPECTED}; {_WAY_BACK}")
    raw_sizes = stream.read(4 * ndim)
    if len(raw_sizes) < 4 * ndim:
        raise UsageError(
            f"{path}: truncated: header declares {ndim} dimensions but holds {len(raw_sizes) // 4}"
        )
    return magic, tuple(int(s) for s in struct.unpack(f">{ndim}I", raw_sizes)), head + raw_sizes


def read_idx(path: str | Path, *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a writable, native-endian numpy array.

    Parameters
    ----------
    path:
        the file.
    magic:
        if given, the magic number the file must have (``2051`` images, ``2049`` labels).

    Raises
    ------
    UsageError
        the file is missing, not gzip/IDX, has a wrong magic number, or a payload whose
        length differs from what the header declares (truncated or trailing bytes).
    """
    return _read(Path(path), magic, None)


def read_idx_and_sha256(path: str | Path, *, magic: int | None = None) -> tuple[np.ndarray, str]:
    """:func:`read_idx`, and the hex SHA-256 of the file's decompressed bytes, in one pass."""
    h = hashlib.sha256()
    array = _read(Path(path), magic, h)
    return array, h.hexdigest()


def _read(path: Path, magic: int | None, digest: hashlib._Hash | None) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"{path}: no such IDX file")
    try:
        with _open(path) as stream:
            found_magic, sizes, header = _read_header(stream, path)
            if magic is not None and found_magic != magic:
                kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX")
                raise UsageError(
                    f"{path}: bad magic number 0x{found_magic & 0xFFFFFFFF:08x}, "
                    f"expected {magic} (0x{magic:08x}, {kind})"
                )
            dtype = IDX_DTYPES[(found_magic >> 8) & 0xFF]
            out = np.empty(sizes, dtype=dtype)
            expected = out.nbytes
            found = _read_exactly(stream, memoryview(out.reshape(-1).view(np.uint8)))
            if found < expected:
                raise UsageError(f"{path}: truncated: expected {expected} payload bytes, found {found}; {_WAY_BACK}")
            if digest is not None:
                digest.update(header)
                digest.update(memoryview(out.reshape(-1).view(np.uint8)))
            extra = len(stream.read(1 << 16))
            if extra:
                raise UsageError(
                    f"{path}: {'at least ' if extra == 1 << 16 else ''}{extra} trailing bytes after the "
                    f"{expected}-byte payload declared by the header {list(sizes)}; {_WAY_BACK}"
                )
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UsageError(f"{path}: corrupt gzip stream ({exc}); {_WAY_BACK}") from None
    return out.astype(dtype.newbyteorder("="), copy=False) if dtype.byteorder == ">" else out


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically (temp file in the same folder, then rename).

    ``compress`` defaults to ``True`` when the name ends in ``.gz``.  Supported dtypes:
    uint8, int8, int16, int32, float32, float64.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        allowed = ", ".join(str(np.dtype(v).newbyteorder("=")) for v in IDX_DTYPES.values())
        raise UsageError(f"write_idx: dtype {array.dtype} cannot be stored in IDX; allowed: {allowed}")
    if array.ndim == 0 or array.ndim > 255:
        raise UsageError(f"write_idx: array must have 1 to 255 dimensions, got {array.ndim}")
    code = codes[native]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    compress = path.name.endswith(".gz") if compress is None else compress
    data = header + payload
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
