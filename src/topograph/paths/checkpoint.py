"""Resumable path searches: one checkpoint file per search, refused when it belongs to another.

A long path search (FourierPathFinder, Bézier/PolyChain curves, NEB) saves its whole state every
``checkpoint_every`` steps and at the end — the control vectors (or NEB's band and velocities),
the optimiser's state, the random generator's state, the history and the best iterate so far —
so a search killed at any moment and started again with the same ``checkpoint=`` continues where
it was and ends with the same result, bitwise on the CPU, as an uninterrupted one.  A search whose
last checkpoint is final returns at once (only the dense re-evaluation runs again).

A checkpoint carries the **fingerprint** of its search: the method and its settings, the two
endpoints, the model (architecture, buffers, loss; the function of an analytic objective) and the
data.  A checkpoint of another search is refused with one line naming what differs.  Given a
*directory*, each search keeps its own file there, named by its fingerprint
(``<method>-<fingerprint>.pt``), so any number of searches (e.g. the pairs of a barrier matrix)
share a folder and a changed setting starts a new file instead of a refusal.

Writes are atomic (:func:`topograph.io.atomic_torch_save`); files are read back with
``torch.load(weights_only=True)`` (tensors and plain containers only, nothing executes).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from topograph.core import FunctionObjective, Objective, ObjectiveLike
from topograph.errors import UsageError
from topograph.io import atomic_torch_save, safe_torch_load

FORMAT = "topograph-path-search"
FORMAT_VERSION = 1
#: settings that do not change what a search computes (left out of its fingerprint)
NOT_FINGERPRINTED = ("progress", "checkpoint", "checkpoint_every")


def tensor_digest(*tensors: Tensor) -> str:
    """SHA-256 (hex, 32 characters) of the dtypes, shapes and bytes of ``tensors``."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}|".encode())
        if t.numel():  # the tensor's own memory, without a copy
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:32]


def model_digest(objective: ObjectiveLike) -> str:
    """What the objective evaluates: architecture, buffers, loss and BatchNorm policy of a module,
    or the function, size and dtype of an analytic objective."""
    h = hashlib.sha256()
    if isinstance(objective, Objective):
        module = objective.module
        h.update(repr(module).encode())
        buffers = [b for _, b in sorted(module.named_buffers(), key=lambda kv: kv[0])]
        h.update(tensor_digest(*buffers).encode())
        h.update(_callable_name(objective.loss_fn).encode())
        h.update(objective.batchnorm.encode())
    else:
        fn = objective.fn if isinstance(objective, FunctionObjective) else None
        h.update(f"{_callable_name(fn)}|{objective.size}|{objective.flat_params().dtype}".encode())
    return h.hexdigest()[:32]


def data_digest(objective: ObjectiveLike) -> str:
    """The data an objective holds: every split's tensors (``"none"`` for an analytic function)."""
    splits = objective.splits if isinstance(objective, Objective) else None
    if not splits:
        return "none"
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(f"{name}|{tensor_digest(*splits[name])}".encode())
    return h.hexdigest()[:32]


def _callable_name(fn: Any) -> str:
    if fn is None:
        return ""
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _plain(value: Any) -> Any:
    """Settings as JSON-comparable values (tuples → lists, other objects → str)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def search_fingerprint(method: str, settings: Mapping[str, Any], objective: ObjectiveLike, start: Tensor, end: Tensor,
                       *, data: str | None = None) -> dict[str, Any]:
    """The parts that identify a search: ``method``, ``settings`` (without progress and checkpoint
    settings), ``endpoints``, ``model`` and ``data`` digests (``data`` may be given when the
    caller has computed it once for many searches on the same objective)."""
    kept = {k: _plain(v) for k, v in settings.items() if k not in NOT_FINGERPRINTED}
    return {"method": method, "settings": kept, "endpoints": tensor_digest(start, end),
            "model": model_digest(objective), "data": data if data is not None else data_digest(objective)}


def fingerprint_key(parts: Mapping[str, Any]) -> str:
    """One hex string (16 characters) for a fingerprint: a file name for its search."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _first_difference(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    if stored.get("method") != wanted.get("method"):
        return f"method {stored.get('method')!r}, this search is {wanted.get('method')!r}"
    if stored.get("settings") != wanted.get("settings"):
        a, b = stored.get("settings", {}), wanted.get("settings", {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"setting {key} = {a.get(key)!r}, this search has {b.get(key)!r}"
    for part, what in (("endpoints", "endpoints"), ("model", "model"), ("data", "data")):
        if stored.get(part) != wanted.get(part):
            return f"other {what}"
    return "another search"


@dataclass
class SearchCheckpoint:
    """The checkpoint file of one search, its fingerprint and how often to write it.

    Make one with :meth:`for_search`; :meth:`load` returns the saved state (``None`` when there
    is none yet) after checking its fingerprint; :meth:`save` writes a state atomically.  The
    loops save every ``every`` steps and at the end.
    """

    path: Path
    fingerprint: dict[str, Any]
    every: int = 10

    @classmethod
    def for_search(cls, location: str | os.PathLike | None, *, method: str, settings: Mapping[str, Any],
                   objective: ObjectiveLike, start: Tensor, end: Tensor, every: int = 10) -> SearchCheckpoint | None:
        """The checkpoint of a search at ``location`` (``None``: no checkpoint).

        ``location`` is a file (with a suffix, e.g. ``search.pt``), or a directory — an existing
        one, or a new path without a suffix or with a trailing separator — in which the file is
        ``<method>-<fingerprint>.pt``.
        """
        if location is None:
            return None
        if int(every) < 1:
            raise UsageError(f"checkpoint_every must be a positive integer (steps), got {every}")
        parts = search_fingerprint(method, settings, objective, start, end)
        path = Path(location)
        if path.exists() and not path.is_dir() and str(location).endswith(("/", os.sep)):
            raise UsageError(f"checkpoint={str(location)!r} names a directory but {path} is a file")
        if path.is_dir() or str(location).endswith(("/", os.sep)) or (path.suffix == "" and not path.exists()):
            path = path / f"{method}-{fingerprint_key(parts)}.pt"
        return cls(path, parts, int(every))

    def load(self) -> dict[str, Any] | None:
        """The saved state, or ``None``; :class:`UsageError` for a damaged or foreign file."""
        if not self.path.exists():
            return None
        try:
            saved = safe_torch_load(self.path)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one line
            reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
            raise UsageError(f"{self.path}: not a readable path-search checkpoint ({reason}); "
                             "delete it to start the search again") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise UsageError(f"{self.path}: not a topograph path-search checkpoint; "
                             "delete it or give another checkpoint path")
        if saved.get("format_version") != FORMAT_VERSION:
            raise UsageError(f"{self.path}: path-search checkpoint format {saved.get('format_version')} "
                             f"(this topograph reads {FORMAT_VERSION}); delete it to start the search again")
        stored = saved.get("fingerprint", {})
        if stored != self.fingerprint:
            raise UsageError(f"{self.path}: checkpoint of another path search "
                             f"({_first_difference(stored, self.fingerprint)}); delete it or give "
                             "another checkpoint path")
        return saved["state"]

    def save(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` (tensors and plain containers) with the fingerprint, atomically."""
        atomic_torch_save(self.path, {"format": FORMAT, "format_version": FORMAT_VERSION,
                                      "fingerprint": self.fingerprint, "state": dict(state)})


__all__ = ["SearchCheckpoint", "data_digest", "fingerprint_key", "model_digest", "search_fingerprint",
           "tensor_digest"]
