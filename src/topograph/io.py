"""Files: atomic writes, safe checkpoint loading and figure saving, shared by every layer.

Atomic writes: a reader (or a resumed run) never sees a half-written file.

Each writer puts the bytes in a temporary file in the *same* directory, flushes and
``fsync``s it, then ``os.replace``s it over the target — an atomic rename on POSIX and
Windows.  A process killed at any moment leaves either the old file or the new one.  The
temporary file gets the mode an ordinary ``open(path, "w")`` would give (``0o666`` less the
umask), not ``mkstemp``'s private ``0o600``, so a shared results folder stays readable.

Safe loading: :func:`safe_torch_load` reads tensors and plain containers only
(``weights_only=True``: nothing in the file is executed) and turns every way a file can be
unreadable — empty, truncated, random bytes, a pickle naming a forbidden global — into one
:class:`~topograph.errors.DamagedFileError` line that names the file and what to do;
:func:`load_weights` does the same for weights that do not fit the model (the first
mismatching key and both shapes).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from matplotlib.figure import Figure
from torch import nn

from topograph.errors import DamagedFileError, UsageError

#: what to do about a damaged file when the caller knows nothing better
DEFAULT_REMEDY = "re-create it by running again the command that wrote it"


def _umask() -> int:
    """The process's umask (read from /proc where it can be, so no other thread sees a change)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_file_beside(path: str | os.PathLike, *, suffix: str = ".tmp") -> tuple[int, str]:
    """``(fd, name)`` of a new temporary file in ``path``'s folder (created) with the mode a
    plain ``open`` would give it (``0o666`` less the umask), for a write-then-rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError:  # pragma: no cover - e.g. a file system without modes
        pass
    return fd, tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    path = Path(path)
    fd, tmp = temp_file_beside(path)
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


def safe_torch_load(path: str | os.PathLike, *, map_location: Any = "cpu",
                    remedy: str = DEFAULT_REMEDY) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, no code.

    A file that cannot be read this way raises :class:`DamagedFileError` (``PATH: problem;
    remedy``): a missing file, a folder, an empty, truncated or random file, or a pickle that
    names a Python object outside torch's allow-list (refused before anything runs).
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file saved by topograph (torch.save)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as err:
        raise UsageError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    except Exception as err:  # noqa: BLE001 - any failure to decode is a damaged or foreign file
        text = " ".join(str(err).split())
        bad_global = re.search(r"GLOBAL (\S+)", text)
        if bad_global:
            problem = (f"refused: its pickle names the Python object {bad_global.group(1)}, which a "
                       "weights file never holds (a tampered or foreign file; nothing in it was run)")
        elif path.stat().st_size == 0:
            problem = "is damaged: empty (0 bytes)"
        else:
            problem = "is damaged: not a complete file of torch.save (truncated, overwritten or foreign)"
        raise DamagedFileError(path, problem, remedy) from None


def _shape(t: Any) -> str:
    return "(" + ", ".join(str(int(n)) for n in t.shape) + ")" if isinstance(t, torch.Tensor) else type(t).__name__


def state_dict_mismatch(module: nn.Module, state: Any) -> str | None:
    """``None`` if ``state`` loads into ``module`` as it is, else the first difference in words
    (a key and its two shapes, a missing or an extra key, or "not a state_dict")."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        return f"holds a {type(state).__name__}, not a model's weights (a state_dict)"
    own = module.state_dict()
    for key, value in own.items():
        if key not in state:
            return f"first mismatching key {key!r}: missing from the file, shape {_shape(value)} in the model"
        if not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape:
            return (f"first mismatching key {key!r}: shape {_shape(state[key])} in the file, "
                    f"{_shape(value)} in the model")
    for key, value in state.items():
        if key not in own:
            return f"first mismatching key {key!r}: shape {_shape(value)} in the file, absent from the model"
    return None


def load_weights(module: nn.Module, state: Any, *, path: str | os.PathLike, model: str,
                 remedy: str = DEFAULT_REMEDY) -> nn.Module:
    """``module.load_state_dict(state)``, or a :class:`DamagedFileError` naming ``path`` (the
    file ``state`` came from), ``model`` (what it should fit, in words) and the first mismatch."""
    problem = state_dict_mismatch(module, state)
    if problem is not None:
        raise DamagedFileError(path, f"does not match {model}: {problem}", remedy)
    module.load_state_dict(state)
    return module


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; rename it over ``path`` on success.

    For writers that stream (``csv``, ``numpy.savez``): ``with atomic_open(p, "w") as fh: ...``.
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes only; mode={mode!r}")
    fd, tmp = temp_file_beside(path)
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


def new_figure(width: float = 6.0, height: float = 4.0, **kwargs: Any) -> Figure:
    """A bare :class:`matplotlib.figure.Figure` (no pyplot state, no backend change: safe inside
    notebooks, scripts and threads); :func:`save_figure` writes it."""
    return Figure(figsize=(width, height), **kwargs)


def new_subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.0, 4.0),
                 **kwargs: Any) -> tuple[Figure, Any]:
    """``(figure, axes)`` like ``pyplot.subplots`` (same arguments), on a bare figure of
    :func:`new_figure`."""
    fig = new_figure(*figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def grid_subplots(xs, ys, x_label: str, y_label: str) -> tuple[Figure, Any]:
    """``(figure, axes)`` sized for a heat map of ``len(ys)`` × ``len(xs)`` cells, with the
    values ``xs``/``ys`` as tick labels (``imshow``'s cell j, i) and the two axis labels."""
    fig, ax = new_subplots(figsize=(1.1 * len(xs) + 2.5, 0.8 * len(ys) + 1.8))
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    return fig, ax


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


__all__ = [
    "DEFAULT_REMEDY",
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "load_weights",
    "new_figure",
    "safe_torch_load",
    "save_figure",
    "state_dict_mismatch",
    "temp_file_beside",
]
