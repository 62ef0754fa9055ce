"""Your own data by name: a factory ``"pkg.module:fn"`` whose return value becomes a :class:`Dataset`.

``[data] factory`` in a run config and ``--data pkg.module:fn`` on the command line call
:func:`load_factory_dataset`: the factory (imported as :mod:`topograph.factories` says) is
called with its keyword arguments and may return

* a dict of splits ``{"train": (x, y), "test": (x, y)}`` (``"val"`` and other names allowed;
  ``"train"`` required, ``"test"`` needed to train);
* one ``(x, y)`` pair: the training split only;
* a ``torch.utils.data.Dataset`` (the training split) or a dict of them, whose items are
  ``(input, target)`` pairs: each is read **once**, in order, through a ``DataLoader`` with
  torch's default collation, and kept **in memory** as two tensors — topograph evaluates whole
  splits many times over, so data that does not fit in memory must be subsampled (return a
  ``torch.utils.data.Subset``) or reduced with ``limit_train``/``limit_test``;
* a :class:`topograph.data.Dataset` (e.g. from :func:`~topograph.data.load_dataset`), as it is.

``x`` and ``y`` are tensors (or NumPy arrays) with one sample per row.  Floating-point inputs
become torch's default dtype (float32), integer targets ``int64`` (class labels, for
cross-entropy), floating targets float32 (regression, e.g. MSE); nothing is normalised — the
data are used as the factory returns them.  Then the options of :func:`load_dataset` that
select samples apply the same way (``val_size`` and ``seed``: a seeded validation split carved
out of train; ``limit_train``/``limit_test``: seeded subsets; ``flatten``).

Anything else — another type, a split that is not a pair of tensors, inputs and targets of
different lengths, splits whose per-sample shapes differ — is one
:class:`~topograph.errors.UsageError` line naming the factory and the split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from topograph.data.dataset import Dataset, Split, _limit, select_splits
from topograph.errors import UsageError
from topograph.factories import call_factory, first_line

#: what a data factory may return, for error lines
RETURNS = ('{"train": (x, y), "test": (x, y)}, one (x, y) pair, torch.utils.data.Dataset(s) of '
           "(input, target) items, or a topograph.data.Dataset")

#: samples per DataLoader batch when a torch Dataset is read into memory
READ_BATCH = 512


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(n) for n in t.shape[1:])


def _is_array(v: Any) -> bool:
    return isinstance(v, (Tensor, np.ndarray))


def _read_torch_dataset(ds: Any, split: str, where: str) -> Split:
    """All ``(input, target)`` items of a torch Dataset, stacked in order into two tensors."""
    try:
        batches = list(DataLoader(ds, batch_size=READ_BATCH, shuffle=False, num_workers=0))
    except Exception as err:  # noqa: BLE001 - the user's __getitem__/__len__ or items that do not collate
        raise UsageError(f"{where}: split {split!r}: its items could not be read and stacked into tensors "
                         f"({first_line(err)}); make __getitem__ return (input, target) tensors, e.g. with "
                         "a transform such as torchvision's ToTensor") from None
    if not batches:
        raise UsageError(f"{where}: split {split!r} is an empty Dataset; give it samples")
    first = batches[0]
    if not (isinstance(first, (tuple, list)) and len(first) == 2 and all(isinstance(t, Tensor) for t in first)):
        raise UsageError(f"{where}: split {split!r}: the Dataset's items are not (input, target) pairs of "
                         "tensors or numbers; make __getitem__ return (input, target)")
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def _as_pair(value: Any, split: str, where: str) -> Split:
    if isinstance(value, TorchDataset):
        x, y = _read_torch_dataset(value, split, where)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_array, value)):
        x, y = (torch.as_tensor(v) for v in value)
    else:
        raise UsageError(f"{where}: split {split!r} is a {type(value).__name__}, not an (inputs, targets) "
                         "pair of tensors or a torch.utils.data.Dataset")
    if x.ndim == 0 or y.ndim == 0:
        raise UsageError(f"{where}: split {split!r} holds a scalar; inputs and targets need one sample per row")
    if x.shape[0] != y.shape[0]:
        raise UsageError(f"{where}: split {split!r} has {x.shape[0]} inputs but {y.shape[0]} targets; give "
                         "one target per input")
    if x.shape[0] == 0:
        raise UsageError(f"{where}: split {split!r} is empty; give it samples")
    if x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if y.is_floating_point():
        y = y.to(torch.get_default_dtype())
    elif y.dtype != torch.int64 and not y.is_complex():
        y = y.long()
    return x, y


def as_dataset(result: Any, *, name: str, where: str | None = None) -> Dataset:
    """The :class:`Dataset` of a data factory's return value ``result`` (see the module's
    docstring for what it may be); ``where`` starts the error lines (default ``name``)."""
    where = where or name
    if isinstance(result, Dataset):
        return result
    if isinstance(result, Mapping):
        if not result or not all(isinstance(k, str) for k in result):
            raise UsageError(f"{where} returned a dict without split names; return {RETURNS}")
        raw = dict(result)
    elif isinstance(result, TorchDataset) or (
            isinstance(result, (tuple, list)) and len(result) == 2 and all(map(_is_array, result))):
        raw = {"train": result}
    else:
        raise UsageError(f"{where} returned a {type(result).__name__}; return {RETURNS}")
    if "train" not in raw:
        raise UsageError(f"{where} returned the splits {', '.join(map(repr, raw))} but no 'train'; "
                         "name the training split 'train'")
    splits = {split: _as_pair(value, split, where) for split, value in raw.items()}
    x_train, y_train = splits["train"]
    for split, (x, y) in splits.items():
        if _shape(x) != _shape(x_train):
            raise UsageError(f"{where}: split {split!r} has inputs of shape {_shape(x)} per sample but "
                             f"'train' has {_shape(x_train)}; give every split the same input shape")
        if _shape(y) != _shape(y_train) or y.is_floating_point() != y_train.is_floating_point():
            raise UsageError(f"{where}: split {split!r} has targets of shape {_shape(y)} ({y.dtype}) per sample "
                             f"but 'train' has {_shape(y_train)} ({y_train.dtype}); give every split the same "
                             "kind of targets")
    labels = not y_train.is_floating_point() and y_train.ndim == 1
    num_classes = int(max(int(y.max()) for _, y in splits.values())) + 1 if labels else 0
    if labels and min(int(y.min()) for _, y in splits.values()) < 0:
        raise UsageError(f"{where}: the class labels include negative numbers; labels are 0 … C−1")
    return Dataset(name=name, splits=splits, num_classes=num_classes, input_shape=_shape(x_train),
                   class_names=tuple(str(i) for i in range(num_classes)),
                   meta={"source": "factory", "factory": name})


def load_factory_dataset(factory: str, kwargs: Mapping[str, Any] | None = None, *, val_size: int | float = 0,
                         seed: int = 0, limit_train: int | None = None, limit_test: int | None = None,
                         flatten: bool = False, label: str = "data factory",
                         how: str = "keyword arguments of the factory") -> Dataset:
    """Call your data factory ``"pkg.module:fn"`` (or ``"path/to/file.py:fn"``) with ``kwargs``
    and make a :class:`Dataset` of what it returns (:func:`as_dataset`), then carve out
    ``val_size`` validation samples, keep ``limit_train``/``limit_test`` samples (seeded by
    ``seed``, as :func:`load_dataset` does) and ``flatten``.  ``label`` and ``how`` name, in
    error lines, where the factory and its keyword arguments were given."""
    n_limit_train = _limit(limit_train, "limit_train")
    n_limit_test = _limit(limit_test, "limit_test")
    where = f"{label} {factory!r}"
    data = as_dataset(call_factory(factory, kwargs, label=label, how=how), name=str(factory).strip(), where=where)
    if val_size and "val" in data.splits:
        raise UsageError(f"{where} returns a 'val' split already; leave val_size at 0")
    if n_limit_test is not None and "test" not in data.splits:
        raise UsageError(f"{where} returns no 'test' split, so limit_test has nothing to limit; leave it out")
    selected, n_val, _ = select_splits(data.splits["train"], data.splits.get("test"), val_size=val_size,
                                       seed=seed, limit_train=n_limit_train, limit_test=n_limit_test)
    splits = {**{k: v for k, v in data.splits.items() if k not in ("train", "test")}, **selected}
    splits = {k: splits[k] for k in ("train", "val", "test") if k in splits} | {
        k: v for k, v in splits.items() if k not in ("train", "val", "test")}
    meta = {**data.meta, "kwargs": dict(kwargs or {}), "val_size": n_val, "split_seed": int(seed),
            "limit_train": n_limit_train, "limit_test": n_limit_test, "flatten": bool(flatten)}
    out = Dataset(name=data.name, splits=splits, num_classes=data.num_classes, input_shape=data.input_shape,
                  class_names=data.class_names, meta=meta)
    return out.flattened() if flatten else out


__all__ = ["RETURNS", "as_dataset", "load_factory_dataset"]
