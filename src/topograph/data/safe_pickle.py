"""A restricted unpickler for data files: numpy arrays, dicts, lists, bytes, str, numbers.

Why.  ``pickle.load`` runs whatever a file tells it to: any pickle can name a global such
as ``os.system`` and call it (the ``GLOBAL``/``STACK_GLOBAL`` + ``REDUCE`` opcodes), so
loading a tampered data file is arbitrary code execution.  The CIFAR-10 "python version"
batches are pickles, so topograph reads them through :class:`SafeUnpickler`, whose
:meth:`~SafeUnpickler.find_class` resolves only the few globals such files need and refuses
every other one *before* anything is called.

What is allowed (everything else raises :class:`~topograph.errors.UsageError` naming the
file and the refused global):

* containers and scalars built by pickle opcodes alone — dict, list, tuple, bytes, str,
  int, float, bool, None — need no global at all;
* ``numpy`` array reconstruction: ``numpy.core.multiarray._reconstruct`` (also under
  numpy 2's ``numpy._core``), ``numpy.ndarray``, ``numpy.core.numeric._frombuffer``
  (protocol 5), ``numpy.core.multiarray.scalar`` (numpy scalars) and ``numpy.dtype`` —
  the last wrapped so that object dtypes (which could hold arbitrary objects) are refused;
* ``_codecs.encode(text, "latin1")`` and ``bytes()``: how protocol-2 pickles written by
  Python 3 spell ``bytes`` objects — wrapped to accept exactly those arguments.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from topograph.errors import UsageError

_ALLOWED_TEXT = "numpy arrays, dicts, lists, bytes, str and numbers"


def _checked_dtype(*args: Any, **kwargs: Any) -> np.dtype:
    dtype = np.dtype(*args, **kwargs)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dtype} is not allowed")
    return dtype


def _latin1_encode(text: Any, encoding: str = "utf-8", *rest: Any) -> bytes:
    if rest or not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    if args and not isinstance(args[0], (bytes, bytearray, str, list)):
        raise pickle.UnpicklingError(f"bytes({type(args[0]).__name__}) is not allowed")
    return bytes(*args)


def _numpy_internals() -> dict[str, Any]:
    """The callables numpy's own pickles reference, found through numpy's own reducers."""
    array = np.zeros(1, dtype=np.uint8)
    reconstruct = array.__reduce__()[0]
    frombuffer = array.__reduce_ex__(5)[0]
    scalar = np.uint8(0).__reduce__()[0]
    return {"_reconstruct": reconstruct, "_frombuffer": frombuffer, "scalar": scalar}


_NP = _numpy_internals()
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _checked_dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _bytes,
    ("__builtin__", "bytes"): _bytes,
}
for _prefix in ("numpy.core", "numpy._core"):
    ALLOWED_GLOBALS[(f"{_prefix}.multiarray", "_reconstruct")] = _NP["_reconstruct"]
    ALLOWED_GLOBALS[(f"{_prefix}.multiarray", "scalar")] = _NP["scalar"]
    ALLOWED_GLOBALS[(f"{_prefix}.numeric", "_frombuffer")] = _NP["_frombuffer"]


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`.

    ``source`` names the file in error messages.
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str = "<pickle>", encoding: str = "bytes") -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UsageError(
                f"{self.source}: refused to unpickle global {module}.{name}; "
                f"data pickles may hold only {_ALLOWED_TEXT}"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UsageError(f"{self.source}: refused a persistent id in a data pickle")


def safe_loads(data: bytes, *, source: str = "<bytes>", encoding: str = "bytes") -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`; every failure is a one-line UsageError."""
    try:
        return SafeUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()
    except UsageError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise UsageError(f"{source}: not a valid data pickle ({type(exc).__name__}: {exc})") from None


def safe_load(path: str | Path, *, encoding: str = "bytes") -> Any:
    """Unpickle the file at ``path`` with :class:`SafeUnpickler` (never plain ``pickle.load``).

    ``encoding="bytes"`` (default) reads Python 2 pickles such as the official CIFAR-10
    batches with ``bytes`` keys; pickles written by Python 3 keep their ``str`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return safe_loads(path.read_bytes(), source=str(path), encoding=encoding)
