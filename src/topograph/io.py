"""Files: atomic writes, safe checkpoint loading and figure saving, shared by every layer.

Atomic writes: a reader (or a resumed run) never sees a half-written file.

Each writer puts the bytes in a temporary file in the *same* directory, flushes and
``fsync``s it, then ``os.replace``s it over the target — an atomic rename on POSIX and
Windows.  A process killed at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN/inf written as JSON's NaN/Infinity)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically; load it back with ``torch.load(weights_only=True)``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def safe_torch_load(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, no code."""
    return torch.load(path, map_location=map_location, weights_only=True)


__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "safe_torch_load"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; rename it over ``path`` on success.

    For writers that stream (``csv``, ``numpy.savez``): ``with atomic_open(p, "w") as fh: ...``.
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes only; mode={mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 130) -> list[Path]:
    """Write a matplotlib figure to ``<stem>.png`` and ``<stem>.svg`` atomically.

    ``path`` may end in ``.png``/``.svg`` or have no suffix; both files are written either way.
    Returns the two paths.
    """
    stem = Path(path)
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    written = []
    for ext in ("png", "svg"):
        target = stem.with_name(stem.name + "." + ext)
        with atomic_open(target, "wb") as fh:
            fig.savefig(fh, format=ext, dpi=dpi, bbox_inches="tight")
        written.append(target)
    return written
