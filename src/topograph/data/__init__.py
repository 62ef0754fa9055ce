"""Data sets as in-memory tensors: digits (bundled), MNIST and Fashion-MNIST (IDX), CIFAR-10,
and your own (:func:`load_factory_dataset`: a factory ``"pkg.module:fn"`` of yours).

``load_dataset(name, ...)`` returns a :class:`Dataset`; pass it straight to
:class:`topograph.core.Objective`.  See ``docs/data.md`` for data directories, downloads and
checksums.  (The analytic 2-D landscapes live in :mod:`topograph.data.analytic`.)
"""

from topograph.data.dataset import (
    SOURCES,
    TARGETS,
    Dataset,
    RawData,
    dataset_from_tensors,
    load_dataset,
    pixel_permutation,
)
from topograph.data.download import ENV_VAR, data_dir
from topograph.data.factory import load_factory_dataset
from topograph.data.idx import read_idx, write_idx
from topograph.data.safe_pickle import safe_load

#: the names ``load_dataset`` accepts
DATASETS = tuple(SOURCES)

__all__ = [
    "DATASETS", "ENV_VAR", "TARGETS", "Dataset", "RawData", "data_dir", "dataset_from_tensors",
    "load_dataset", "load_factory_dataset", "pixel_permutation", "read_idx", "safe_load", "write_idx",
]
