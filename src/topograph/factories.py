"""Your own code by name: ``"pkg.module:fn"`` or ``"path/to/file.py:fn"`` → the callable, called.

A *factory* is a callable of yours that topograph calls to get a model (``[model] factory``,
``topograph surface --model``) or data (``[data] factory``, ``--data``).  It is named the way
``python -m`` and entry points name code:

* ``"pkg.module:fn"`` — ``pkg.module`` is imported exactly as Python would import it, with the
  current directory on ``sys.path`` (as ``python -m`` puts it there), so a module beside you
  or an installed package both work; ``fn`` may be dotted (``"pkg.module:Builder.build"``);
* ``"path/to/file.py:fn"`` — the file is run as a module (relative paths from the current
  directory), with its folder on ``sys.path`` (as ``python path/to/file.py`` puts it there),
  so it can import its neighbours.

Importing a module runs its code: that your own code runs is the point of a factory, so name
only code you trust, as you would with ``python -m``.  (Nothing from a *weights* file is ever
run: those load with ``torch.load(weights_only=True)``, see :mod:`topograph.io`.)

Every way this can fail — a malformed name, a module that cannot be imported, a missing or
non-callable attribute, keyword arguments the callable does not take, an exception inside it —
is one :class:`~topograph.errors.UsageError` line naming the factory (and the config key or
option it came from), what went wrong (the first line of the underlying error) and what to do.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from topograph.errors import UsageError

#: how a factory is written, for error lines and help texts
FACTORY_FORMS = "'pkg.module:fn' or 'path/to/file.py:fn'"

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def first_line(err: BaseException) -> str:
    """``Type: the first line of the message`` of an exception (its type alone when empty)."""
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else ""
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def is_factory_spec(text: object) -> bool:
    """Whether ``text`` has the form of a factory (``something:callable``).  Callers check
    their built-in names first (``torchvision:resnet18`` is a model name, not a factory)."""
    return isinstance(text, str) and ":" in text.strip(":") and text.rsplit(":", 1)[1] != ""


@dataclass(frozen=True)
class FactorySpec:
    """A parsed factory name: ``target`` (a module name or a ``.py`` file) and ``attribute``."""

    text: str
    target: str
    attribute: str
    is_file: bool

    @classmethod
    def parse(cls, text: Any, *, label: str) -> FactorySpec:
        """Parse ``text``; a malformed one is a UsageError line naming ``label`` (the key or
        option it came from)."""
        if not isinstance(text, str) or ":" not in text:
            raise UsageError(f"{label} {text!r}: a factory is written {FACTORY_FORMS} (the module or "
                             "file, a colon, then the callable that returns it)")
        target, _, attribute = text.strip().rpartition(":")
        is_file = target.endswith(".py") or "/" in target or os.sep in target
        if not target or not _ATTRIBUTE.fullmatch(attribute) or (not is_file and not _MODULE_NAME.fullmatch(target)):
            raise UsageError(f"{label} {text!r}: not a factory name; write it {FACTORY_FORMS} (a dotted "
                             "module name or a .py file, a colon, then the callable's name)")
        return cls(text=text.strip(), target=target, attribute=attribute, is_file=is_file)


def _prepend_path(folder: str) -> None:
    """Put ``folder`` first on ``sys.path`` unless it is already there (kept, as Python does)."""
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _import_name(spec: FactorySpec, label: str) -> ModuleType:
    cwd = os.getcwd()
    if "" not in sys.path:  # "" is the current directory (python -c, the REPL)
        _prepend_path(cwd)
    try:
        return importlib.import_module(spec.target)
    except Exception as err:  # noqa: BLE001 - any failure while importing the user's module
        missing = isinstance(err, ModuleNotFoundError) and err.name is not None and (
            spec.target == err.name or spec.target.startswith(err.name + "."))
        hint = (f"check the name, and run topograph from the folder that holds it (the current directory, "
                f"{cwd}, is on sys.path) or install its package" if missing
                else "fix the error in the module, or give another factory")
        raise UsageError(f"{label} {spec.text!r}: cannot import module {spec.target!r} ({first_line(err)}); "
                         f"{hint}") from None


def _import_file(spec: FactorySpec, label: str) -> ModuleType:
    path = Path(spec.target).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise UsageError(f"{label} {spec.text!r}: {path}: {what}; give an existing .py file (relative paths "
                         f"start at the current directory, {os.getcwd()})")
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_topograph_factory_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    _prepend_path(str(path.parent))
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"{label} {spec.text!r}: {path} cannot be loaded as a Python module; give a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # as an import does: dataclasses and pickling look it up there
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any failure while running the user's file
        del sys.modules[name]
        raise UsageError(f"{label} {spec.text!r}: cannot import {path} ({first_line(err)}); fix the error in "
                         "the file, or give another factory") from None
    return module


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."


def load_factory(text: Any, *, label: str) -> Callable[..., Any]:
    """The callable ``text`` names (:class:`FactorySpec`), imported; one UsageError line if the
    module cannot be imported or has no such callable."""
    spec = FactorySpec.parse(text, label=label)
    module = _import_file(spec, label) if spec.is_file else _import_name(spec, label)
    obj: Any = module
    for part in spec.attribute.split("."):
        if not hasattr(obj, part):
            where = spec.target if obj is module else f"{spec.target}:{spec.attribute.rsplit('.', 1)[0]}"
            found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
            offer = f"it defines {', '.join(found[:12])}" if found else "it defines no public callable"
            raise UsageError(f"{label} {spec.text!r}: {where} has no attribute {part!r}; {offer}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{label} {spec.text!r}: {spec.attribute} = {_short(obj)} is not a callable; name the "
                         "function (or class) that builds it")
    return obj


def check_keywords(fn: Callable[..., Any], kwargs: Mapping[str, Any], *, text: str, label: str,
                   how: str) -> None:
    """That ``fn(**kwargs)`` binds: no keyword it does not take, none it needs left out (one
    UsageError line naming the keyword; ``how`` says where keywords are given)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: not introspectable
        return
    params = signature.parameters.values()
    takes = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        for key in kwargs:
            if key not in takes:
                offer = f"it takes {', '.join(takes)}" if takes else "it takes none"
                raise UsageError(f"{label} {text!r} has no keyword argument {key!r}; {offer} ({how})")
    for p in params:
        if (p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
                and p.name not in kwargs):
            raise UsageError(f"{label} {text!r} needs the keyword argument {p.name!r}; give it ({how})")
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            raise UsageError(f"{label} {text!r} needs a positional argument {p.name!r}, which topograph "
                             "cannot give; wrap it in a function of keyword arguments")


def call_factory(text: Any, kwargs: Mapping[str, Any] | None = None, *, label: str,
                 how: str = "keyword arguments of the factory") -> Any:
    """Import the factory ``text`` names and call it with ``kwargs``.  Every failure — import,
    lookup, keywords, an exception raised inside it — is one UsageError line naming it."""
    kwargs = dict(kwargs or {})
    fn = load_factory(text, label=label)
    text = str(text).strip()
    check_keywords(fn, kwargs, text=text, label=label, how=how)
    try:
        return fn(**kwargs)
    except UsageError as err:  # topograph's own one-line error, from inside the factory
        raise UsageError(f"{label} {text!r} failed: {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's code failed: one line, not a traceback
        raise UsageError(f"{label} {text!r} raised {first_line(err)}; fix the factory or its "
                         f"arguments ({how}); call it in Python to see the traceback") from None


__all__ = ["FACTORY_FORMS", "FactorySpec", "call_factory", "check_keywords", "first_line",
           "is_factory_spec", "load_factory"]
