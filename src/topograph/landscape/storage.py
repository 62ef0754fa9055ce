"""The surface file: a self-describing HDF5 file that is also the resume state.

Layout (h5py; every attribute a string, number or JSON text)::

    /                       attrs: format="topograph-surface", format_version, created,
                                   versions (JSON: topograph, torch, numpy, h5py),
                                   settings (JSON: grid, split, batch, directions metadata),
                                   model_fingerprint, data_fingerprint,
                                   engine (the evaluation path that created the file)
    /coordinates/axis0      α values along δ_1   (axis1 for δ_2 on a plane)
    /loss, /accuracy        float64 grids (NaN where not yet computed)
    /done                   uint8 grid: 1 where the point is computed and written
    /directions/center      θ*  (float32 or the model's dtype)
    /directions/vectors     δ_1 … δ_m  (m × P)

The file is created complete (all datasets allocated) in a temporary file in the same folder
and renamed into place, so a file either does not exist or has every dataset.  Each block of
points is written values first, then its ``done`` flags, then flushed: a kill between the two
leaves those points not done, and the next run recomputes exactly them.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from topograph.core import FunctionObjective, Objective, ObjectiveLike
from topograph.errors import UsageError
from topograph.io import temp_file_beside

FORMAT = "topograph-surface"
FORMAT_VERSION = 1


def tensor_digest(*tensors: Tensor) -> str:
    """SHA-256 (hex, first 16 bytes) of the raw bytes, dtypes and shapes of ``tensors``."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def model_fingerprint(objective: ObjectiveLike, center: Tensor) -> str:
    """Hash of the centre's flat parameters and the architecture (``repr`` of the module)."""
    arch = repr(objective.module if isinstance(objective, Objective) else
                objective.fn if isinstance(objective, FunctionObjective) else "")
    h = hashlib.sha256(tensor_digest(center).encode())
    h.update(arch.encode())
    return h.hexdigest()[:32]


def versions() -> dict[str, str]:
    """Versions of the packages that made a result."""
    from importlib.metadata import PackageNotFoundError, version

    import h5py

    try:
        tg = version("topograph")
    except PackageNotFoundError:  # pragma: no cover
        tg = "unknown"
    return {"topograph": tg, "torch": torch.__version__, "numpy": np.__version__,
            "h5py": h5py.__version__}


def create(path: Path, *, axes: list[np.ndarray], center: Tensor, vectors: Tensor,
           settings: dict[str, Any], model_fp: str, data_fp: str, engine: str = "") -> None:
    """Create the file at ``path`` atomically (temp file in the same folder, then rename)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    os.close(fd)
    shape = tuple(len(a) for a in axes)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            f.attrs["versions"] = json.dumps(versions())
            f.attrs["settings"] = json.dumps(settings, sort_keys=True)
            f.attrs["model_fingerprint"] = model_fp
            f.attrs["data_fingerprint"] = data_fp
            f.attrs["engine"] = engine
            for i, a in enumerate(axes):
                f.create_dataset(f"coordinates/axis{i}", data=np.asarray(a, dtype=np.float64))
            f.create_dataset("loss", data=np.full(shape, np.nan))
            f.create_dataset("accuracy", data=np.full(shape, np.nan))
            f.create_dataset("done", data=np.zeros(shape, dtype=np.uint8))
            f.create_dataset("directions/center", data=center.detach().cpu().numpy())
            f.create_dataset("directions/vectors", data=vectors.detach().cpu().numpy())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without the values that carry floating-point noise of their computation
    (explained-variance ratios); the direction vectors are compared with a tolerance instead."""
    out = json.loads(json.dumps(settings, sort_keys=True))
    if isinstance(out.get("directions"), dict):
        out["directions"].pop("explained_variance_ratio", None)
    return out


def check(path: Path, *, settings: dict[str, Any], model_fp: str, data_fp: str,
          vectors: Tensor | None = None) -> None:
    """Raise a one-line :class:`UsageError` if the file at ``path`` was made for another
    model, data set, grid or directions."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise UsageError(f"{path}: not a topograph surface file; choose another output file")
            old_model, old_data = f.attrs["model_fingerprint"], f.attrs["data_fingerprint"]
            old_settings = _comparable(json.loads(f.attrs["settings"]))
            old_vectors = f["directions/vectors"][...]
    except OSError as err:
        raise UsageError(f"{path}: cannot be read as HDF5 ({err}); delete it or choose another "
                         "output file") from None
    if old_model != model_fp:
        raise UsageError(f"{path}: was computed for a different model (fingerprint {old_model} != "
                         f"{model_fp}); delete it or choose another output file")
    if old_data != data_fp:
        raise UsageError(f"{path}: was computed on different data (fingerprint {old_data} != "
                         f"{data_fp}); delete it or choose another output file")
    new_settings = _comparable(settings)
    if old_settings != new_settings:
        diff = sorted(k for k in set(old_settings) | set(new_settings)
                      if old_settings.get(k) != new_settings.get(k))
        raise UsageError(f"{path}: was computed with other settings ({', '.join(diff)}); delete "
                         "it or choose another output file")
    if vectors is not None:
        new = vectors.detach().cpu().double().numpy()
        scale = max(float(np.abs(new).max()) if new.size else 0.0, 1e-30)
        if old_vectors.shape != new.shape or not np.allclose(old_vectors, new, rtol=1e-5, atol=1e-6 * scale):
            raise UsageError(f"{path}: was computed along other directions; delete it or choose "
                             "another output file")


def read_done(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f["done"][...].astype(bool)


def write_block(path: Path, flat_index: np.ndarray, loss: np.ndarray, accuracy: np.ndarray) -> None:
    """Write the values of the points ``flat_index`` (row-major grid order), then mark them done."""
    import h5py

    with h5py.File(path, "r+") as f:
        shape = f["loss"].shape
        lo, ac, dn = f["loss"][...], f["accuracy"][...], f["done"][...]
        idx = np.unravel_index(flat_index, shape)
        lo[idx], ac[idx] = loss, accuracy
        f["loss"][...] = lo
        f["accuracy"][...] = ac
        f.flush()
        dn[idx] = 1
        f["done"][...] = dn
        f.flush()


def read(path: Path) -> dict[str, Any]:
    """Everything in a surface file, as numpy arrays and decoded attributes."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such surface file")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise UsageError(f"{path}: not a topograph surface file")
        n_axes = len(f["coordinates"])
        return {
            "axes": [f[f"coordinates/axis{i}"][...] for i in range(n_axes)],
            "loss": f["loss"][...],
            "accuracy": f["accuracy"][...],
            "done": f["done"][...].astype(bool),
            "center": torch.from_numpy(f["directions/center"][...]),
            "vectors": torch.from_numpy(f["directions/vectors"][...]),
            "settings": json.loads(f.attrs["settings"]),
            "versions": json.loads(f.attrs["versions"]),
            "model_fingerprint": str(f.attrs["model_fingerprint"]),
            "data_fingerprint": str(f.attrs["data_fingerprint"]),
            "engine": str(f.attrs.get("engine", "")),
        }


__all__ = ["FORMAT", "check", "create", "model_fingerprint", "read", "read_done", "tensor_digest",
           "versions", "write_block"]
