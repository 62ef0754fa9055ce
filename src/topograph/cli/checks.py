"""Checks the commands make before any work: can the output be written, do the data have the
split and the samples asked for?

Kept free of torch so that ``topograph COMMAND --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from topograph.errors import UsageError


def check_writable(path: str | os.PathLike, *, label: str, kind: str = "dir") -> Path:
    """Check, without creating anything, that ``path`` can be written: a folder (``kind="dir"``)
    or a file (``kind="file"``) that exists and is writable, or whose nearest existing ancestor
    is a writable folder.  ``label`` names the option or key in the one-line
    :class:`UsageError` (``"--out"``, ``"config.toml: run.out_dir"``)."""
    path = Path(path)
    what = f"{label} {path}"
    if path.exists():
        if kind == "dir" and not path.is_dir():
            raise UsageError(f"{what}: is a file, not a folder; give a folder")
        if kind == "file" and path.is_dir():
            raise UsageError(f"{what}: is a folder; give a file name")
        target = path if kind == "dir" else path.parent
    else:
        target = path.parent
        while not target.exists():
            target = target.parent
        if not target.is_dir():
            raise UsageError(f"{what}: cannot be created because {target} is a file, not a folder; "
                             "give another path")
    if not _writable(target):
        raise UsageError(f"{what}: cannot be written ({target} is read-only or not yours); "
                         "give another path")
    return path


def check_split(objective, split: str, batch_size: int | None) -> None:
    """One-line :class:`UsageError` unless ``objective`` has the split ``split`` with at least
    ``batch_size`` samples (``None``: the whole split)."""
    names = objective.split_names()
    if split not in names:
        raise UsageError(f"--split {split!r} is not in the data; it has: {', '.join(names)}")
    n_split = objective.num_samples(split)
    if batch_size is not None and batch_size > n_split:
        raise UsageError(f"--batch-size {batch_size}: the {split} split has only {n_split} samples; give at "
                         f"most {n_split}, or leave the option out to use the whole split")


def _writable(folder: Path) -> bool:
    """Whether new files can be made in ``folder``: permissions, and not a read-only mount."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(folder).f_flag & os.ST_RDONLY
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return True


__all__ = ["check_writable"]
