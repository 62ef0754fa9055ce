"""Where data files live, how they are checked, and how they are fetched.

Data directory (:func:`data_dir`), first that applies:

1. the ``root`` argument (``load_dataset(..., root=...)``, ``[data] root`` in a config);
2. the environment variable ``TOPOGRAPH_DATA_DIR``;
3. ``~/.cache/topograph``.

Integrity: :func:`sha256_file` hashes in 1 MiB blocks; :func:`read_sha256sums` parses a
``SHA256SUMS`` file (``sha256sum`` output format), which a local copy may ship to vouch for
its own bytes.  :func:`download` streams a URL into a temporary file in the destination
folder with a rich progress bar, checks its SHA-256 (and any further check the caller
passes, e.g. of the decompressed content) and only then renames it into place
(``os.replace``, atomic), so a partial or tampered download never appears under the final
name.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from topograph.errors import UsageError
from topograph.io import temp_file_beside

ENV_VAR = "TOPOGRAPH_DATA_DIR"
DEFAULT_DIR = Path("~/.cache/topograph")
_CHUNK = 1 << 20


def data_dir(root: str | Path | None = None) -> Path:
    """The data directory: ``root``, else ``$TOPOGRAPH_DATA_DIR``, else ``~/.cache/topograph``."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    return DEFAULT_DIR.expanduser()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def md5_file(path: str | Path) -> str:
    """Hex MD5 of a file's bytes (only to compare with checksums published as MD5)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_sha256sums(path: str | Path) -> dict[str, str]:
    """``{file name: hex digest}`` from a ``sha256sum``-style file (``<hex>  <name>`` lines)."""
    path = Path(path)
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UsageError(f"{path}:{number}: not a '<sha256 hex>  <file name>' line")
        sums[parts[1].lstrip("*").strip()] = digest
    return sums


def verify_sha256(path: str | Path, expected: str) -> str:
    """Hash ``path``; raise UsageError naming the file and both digests if it is not ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise UsageError(f"{path}: SHA-256 mismatch: expected {expected.lower()}, found {actual}")
    return actual


def verify_files(
    folder: Path, paths: list[Path], official: dict[str, str] | None = None
) -> dict[str, object]:
    """Check ``paths`` against ``folder/SHA256SUMS`` when it exists; return what was checked.

    A file listed in ``SHA256SUMS`` must match it (UsageError naming the file and both
    digests).  A file not listed there is compared with ``official`` (name -> SHA-256) and
    only *recorded*: local copies are trusted, and the record says how far.

    Returns ``{"sha256": {name: digest}, "verified": "SHA256SUMS" | "official" | "none" |
    "mixed"}``.
    """
    sums_file = Path(folder) / "SHA256SUMS"
    sums = read_sha256sums(sums_file) if sums_file.is_file() else {}
    official = official or {}
    digests: dict[str, str] = {}
    how: set[str] = set()
    for path in paths:
        digest = sha256_file(path)
        digests[path.name] = digest
        if path.name in sums:
            if sums[path.name] != digest:
                raise UsageError(
                    f"{path}: SHA-256 mismatch with {sums_file}: expected {sums[path.name]}, found {digest}"
                )
            how.add("SHA256SUMS")
        else:
            how.add("official" if official.get(path.name) == digest else "none")
    return {"sha256": digests, "verified": how.pop() if len(how) == 1 else ("mixed" if how else "none")}


def download(
    url: str,
    dest: str | Path,
    sha256: str | None,
    *,
    timeout: float = 60.0,
    progress: bool | None = None,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and check it; atomic, never leaves partial files.

    Parameters
    ----------
    url:
        the source (``http(s)://`` or ``file://``).
    dest:
        the final path; its folder is created.
    sha256:
        the expected hex digest of the downloaded bytes, or ``None`` when ``verify`` checks
        the file instead.  On a mismatch the temporary file is deleted and a UsageError
        names the file and both digests.
    verify:
        a further check of the complete temporary file before it is renamed into place; it
        raises a UsageError to reject the download (the temporary file is then deleted).
    timeout:
        socket timeout in seconds.
    progress:
        show a rich progress bar; default: only when stderr is a terminal.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if sha256 is None and verify is None:
        raise ValueError("download needs an expected sha256 or a verify callable")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    fd, tmp_name = temp_file_beside(dest, suffix=".part")
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "topograph"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(f"download of {url} failed: {reason}") from None
        with response, os.fdopen(fd, "wb") as out:
            fd = -1
            total = response.headers.get("Content-Length")
            columns = (
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(),
            )
            with Progress(*columns, console=Console(stderr=True), disable=not show) as bar:
                task = bar.add_task(dest.name, total=int(total) if total else None)
                try:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        h.update(block)
                        bar.advance(task, len(block))
                except (urllib.error.URLError, OSError) as exc:
                    raise UsageError(f"download of {url} failed while reading: {exc}") from None
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            raise UsageError(
                f"{dest}: SHA-256 mismatch after downloading {url}: expected {sha256.lower()}, "
                f"got {actual}; the download was discarded"
            )
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    except BaseException:
        if fd != -1:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return dest
