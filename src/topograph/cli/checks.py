"""Checks the commands make before any work: can the output be written?

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


def _writable(folder: Path) -> bool:
    """Whether new files can be made in ``folder``: permissions, and not a read-only mount."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(folder).f_flag & os.ST_RDONLY
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return True


__all__ = ["check_writable"]
