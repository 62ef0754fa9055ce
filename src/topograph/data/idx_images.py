"""An image-classification data set stored as four IDX files: MNIST's layout, shared by sources.

MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017) come as the same four files —
``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz`` (the uncompressed names, without ``.gz``, are accepted too) —
in the IDX format (:mod:`topograph.data.idx`).  An :class:`IdxImageSource` describes one such
data set (its name, mirrors, checksums, classes and normalisation constants); its
:meth:`~IdxImageSource.load_raw` is the ``load_raw`` of the data set's module.

Where the files are looked for: the data directory ``D``
(:func:`topograph.data.download.data_dir`) itself, then ``D/<subdir>`` (``D/mnist``,
``D/fashion-mnist``); the folder holding more of the four files wins.

Integrity, file by file:

1. a ``SHA256SUMS`` file in the folder (``sha256sum`` format): a file it lists must match it
   (a local copy vouches for its own bytes this way);
2. sources that know the SHA-256 of the official files' **decompressed content**
   (``content_sha256``, MNIST) check it on every load: a file whose content differs from the
   official one is refused unless ``SHA256SUMS`` vouches for it.  (Within one process a load
   of files whose path, size, inode and modification and change times are unchanged reuses the
   arrays and digests of the first, checked read: a study loads its data once per run.)  The content checksum does
   not depend on the gzip encoder, so the official download and a re-compressed copy of the
   same files both pass;
3. sources that only know checksums of the official ``.gz`` files (Fashion-MNIST) record
   whether a local file matches them in ``meta["verified"]`` (local copies are trusted, and
   the record says how far).

``meta["verified"]`` is ``"official"`` (content or ``.gz`` bytes equal the official ones),
``"SHA256SUMS"``, ``"none"`` or ``"mixed"``.  Downloads (``download=True``) are checked before
they are renamed into place: by the official ``.gz`` SHA-256 and MD5 where known, and by the
content SHA-256 where known.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from topograph.data.dataset import RawData
from topograph.data.download import (
    ENV_VAR,
    data_dir,
    md5_file,
    read_sha256sums,
    sha256_file,
)
from topograph.data.download import (
    download as download_file,
)
from topograph.data.idx import IMAGES_MAGIC, LABELS_MAGIC, content_sha256, read_idx_and_sha256
from topograph.errors import UsageError

#: the four files of an MNIST-layout data set, by role
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
SUMS_FILE = "SHA256SUMS"


#: files read and checked in this process, by their identity (:func:`_stamp`): the decoded
#: splits, their digests and verdicts — a data set loaded again while its files are unchanged is
#: not decompressed and hashed again (studies load it once per run); callers get clones
_CHECKED: OrderedDict[tuple, tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, str], dict[str, str],
                                   frozenset[str]]] = OrderedDict()
_CHECKED_MAX = 2


def _stamp(path: Path) -> tuple | None:
    """A file's identity for the cache: resolved path, size, inode and modification and change
    times in nanoseconds (``None`` for a missing file) — any write to it changes the stamp."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (str(path.resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _find(folder: Path, gz_name: str) -> Path | None:
    for name in (gz_name, gz_name[: -len(".gz")]):
        if (folder / name).is_file():
            return folder / name
    return None


def _gz_name(path: Path) -> str:
    return path.name if path.name.endswith(".gz") else path.name + ".gz"


@dataclass(frozen=True)
class IdxImageSource:
    """One data set in the four-IDX-file layout: where its files are, how they are checked.

    Attributes
    ----------
    name:
        the ``load_dataset`` name (``"mnist"``).
    title:
        the name in messages (``"MNIST"``).
    citation:
        the source, recorded in ``meta["source"]``.
    subdir:
        the data directory's subfolder that may hold the files.
    mirrors:
        base URLs tried in order by ``download=True``.
    class_names, mean, std:
        one name per class; the normalisation constants ``(x − mean) / std`` of pixels in [0, 1].
    sizes:
        the official number of samples per split (``meta["official_sizes"]`` says if they hold).
    gz_sha256, gz_md5:
        checksums of the official ``.gz`` files, by file name (downloads must match them).
    content_sha256:
        SHA-256 of the official decompressed files, by ``.gz`` file name; when given, every
        load checks it (see the module docstring).
    image_side:
        images are ``image_side × image_side``.
    """

    name: str
    title: str
    citation: str
    subdir: str
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sizes: Mapping[str, int]
    gz_sha256: Mapping[str, str] = field(default_factory=dict)
    gz_md5: Mapping[str, str] = field(default_factory=dict)
    content_sha256: Mapping[str, str] = field(default_factory=dict)
    image_side: int = 28

    # ------------------------------------------------------------------ where the files are
    def locate(self, root: str | Path | None = None) -> tuple[Path, dict[str, Path | None]]:
        """The folder holding (or to receive) the files, and each file's path or ``None``.

        Looks in the data directory and in its ``subdir`` subfolder; the folder with the most
        files wins (the subfolder when neither has any).
        """
        base = data_dir(root)
        best: tuple[int, Path, dict[str, Path | None]] | None = None
        for folder in (base, base / self.subdir):
            found = {key: _find(folder, name) for key, name in FILES.items()}
            count = sum(p is not None for p in found.values())
            if best is None or count > best[0]:
                best = (count, folder, found)
        assert best is not None
        if best[0] == 0:
            folder = base if base.name == self.subdir else base / self.subdir
            return folder, {key: None for key in FILES}
        return best[1], best[2]

    # ------------------------------------------------------------------ downloads
    def fetch(self, folder: Path, names: list[str]) -> None:
        """Download the named official files into ``folder``, each checked before it appears."""
        for name in names:
            if name not in self.gz_sha256 and name not in self.content_sha256:
                raise UsageError(f"{self.title}: no checksum known for {name}; cannot download it safely")
            errors = []
            for mirror in self.mirrors:
                url = mirror + name
                try:
                    download_file(url, folder / name, self.gz_sha256.get(name),
                                  verify=self._download_check(name, folder / name, url))
                except UsageError as exc:
                    errors.append(str(exc))
                    continue
                break
            else:
                raise UsageError(f"could not download {name}: {' | '.join(errors)}")

    def _download_check(self, name: str, dest: Path, url: str):
        def check(tmp: Path) -> None:
            expected_md5 = self.gz_md5.get(name)
            if expected_md5 is not None:
                found = md5_file(tmp)
                if found != expected_md5:
                    raise UsageError(f"{dest}: MD5 mismatch after downloading {url}: expected "
                                     f"{expected_md5}, found {found}; the download was discarded")
            expected = self.content_sha256.get(name)
            if expected is not None:
                found = content_sha256(tmp)
                if found != expected:
                    raise UsageError(f"{dest}: SHA-256 mismatch of the decompressed content after "
                                     f"downloading {url}: expected {expected}, found {found}; "
                                     "the download was discarded")
        return check

    # ------------------------------------------------------------------ reading
    def load_raw(self, root: str | Path | None = None, download: bool = False) -> RawData:
        """The data set as (N, 1, side, side) float32 in [0, 1], train and test, checked."""
        folder, found = self.locate(root)
        missing = [FILES[key] for key, path in found.items() if path is None]
        if missing:
            if not download:
                raise UsageError(
                    f"{self.title} files not found in {data_dir(root)} or its {self.subdir}/ subfolder "
                    f"(missing: {', '.join(missing)}); pass root=, set {ENV_VAR}, or use download=True"
                )
            self.fetch(folder, missing)
            folder, found = self.locate(folder)
        paths = {key: path for key, path in found.items() if path is not None}
        sums_path = folder / SUMS_FILE
        sums = read_sha256sums(sums_path) if sums_path.is_file() else {}

        stamp = (self.name, _stamp(sums_path), tuple((key, _stamp(path)) for key, path in sorted(paths.items())))
        if stamp in _CHECKED:
            checked, file_digests, content_digests, how = _CHECKED[stamp]
            _CHECKED.move_to_end(stamp)
        else:
            file_digests, content_digests = {}, {}
            verdicts: set[str] = set()
            arrays: dict[str, np.ndarray] = {}
            for key, path in paths.items():
                file_digests[path.name] = digest = sha256_file(path)
                listed = sums.get(path.name)
                if listed is not None and listed != digest:
                    raise UsageError(f"{path}: SHA-256 mismatch with {sums_path}: expected {listed}, found {digest}")
                magic = IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC
                arrays[key], content_digests[path.name] = read_idx_and_sha256(path, magic=magic)
                verdicts.add(self._verdict(path, digest, content_digests[path.name], listed is not None, sums_path))
            checked = {split: self._split(split, arrays, paths) for split in ("train", "test")}
            how = frozenset(verdicts)
            _CHECKED[stamp] = (checked, file_digests, content_digests, how)
            while len(_CHECKED) > _CHECKED_MAX:
                _CHECKED.popitem(last=False)
        # fresh tensors for the caller (load_dataset normalises them in place)
        splits = {split: (x.clone(), y.clone()) for split, (x, y) in checked.items()}
        file_digests, content_digests, how = dict(file_digests), dict(content_digests), set(how)
        sizes = {split: int(y.shape[0]) for split, (_, y) in splits.items()}
        verified = how.pop() if len(how) == 1 else ("mixed" if how else "none")
        meta = {
            "source": self.citation,
            "directory": str(folder),
            "official_sizes": sizes == dict(self.sizes),
            "sha256": file_digests,
            "verified": verified,
        }
        if self.content_sha256:
            meta["content_sha256"] = content_digests
        return RawData(
            name=self.name, train=splits["train"], test=splits["test"],
            num_classes=len(self.class_names), class_names=self.class_names, meta=meta,
            mean=self.mean, std=self.std,
        )

    def _verdict(self, path: Path, file_digest: str, content_digest: str, listed: bool,
                 sums_path: Path) -> str:
        """How ``path`` is vouched for; raises when official content is known and differs."""
        gz_name = _gz_name(path)
        official_content = self.content_sha256.get(gz_name)
        if official_content is not None:
            if content_digest == official_content:
                return "official"
            if listed:
                return "SHA256SUMS"
            raise UsageError(
                f"{path}: not the official {self.title} file: the SHA-256 of its decompressed content "
                f"is {content_digest}, expected {official_content}; delete it and load with "
                f"download=True, or vouch for a copy of your own in {sums_path}"
            )
        if self.gz_sha256.get(path.name) == file_digest:
            return "official"
        return "SHA256SUMS" if listed else "none"

    def _split(self, split: str, arrays: Mapping[str, np.ndarray],
               paths: Mapping[str, Path]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        side = self.image_side
        if images.ndim != 3 or images.shape[1:] != (side, side):
            raise UsageError(f"{paths[f'{split}_images']}: images must be N×{side}×{side}, found {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise UsageError(
                f"{paths[f'{split}_labels']}: {labels.shape[0]} labels for {images.shape[0]} images"
            )
        if labels.size and labels.max() >= len(self.class_names):
            raise UsageError(
                f"{paths[f'{split}_labels']}: label {int(labels.max())} outside 0-{len(self.class_names) - 1}"
            )
        x = torch.from_numpy(images).unsqueeze(1).to(torch.float32).div_(255.0)
        return x, torch.from_numpy(labels.astype(np.int64))


__all__ = ["FILES", "IdxImageSource"]
