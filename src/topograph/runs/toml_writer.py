"""A small TOML writer for resolved run configs (the standard library only reads TOML).

Supports what configs hold: tables of strings, booleans, integers, floats (``inf``/``nan``
included), arrays of those, and inline tables (e.g. ``base = {name = "sgd", lr = 0.1}``).
``None`` values are omitted (TOML has no null).  ``tomllib.loads(dumps(d)) == d`` for every
such ``d`` without ``None`` — tested in ``tests/test_runs.py``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, Mapping):
        items = [f"{_key(str(k))} = {_value(x)}" for k, x in v.items() if x is not None]
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: Mapping[str, Any], *, header: str = "") -> str:
    """TOML text of ``doc``: top-level scalars first, then one ``[table]`` per mapping."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    scalars = {k: v for k, v in doc.items() if not isinstance(v, Mapping) and v is not None}
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in doc.items():
        if isinstance(v, Mapping):
            if lines:
                lines.append("")
            lines.append(f"[{_key(k)}]")
            for kk, vv in v.items():
                if vv is not None:
                    lines.append(f"{_key(str(kk))} = {_value(vv)}")
    return "\n".join(lines) + "\n"


__all__ = ["dumps"]
