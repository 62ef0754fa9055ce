"""A config's files and command-line overrides: reading TOML with one-line errors, and
``--set KEY=VALUE`` (``--set KEY=`` removes a key)."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from topograph.errors import UsageError

#: the value of an override with nothing after ``=``: remove the key
UNSET = object()


def parse_override(text: str) -> tuple[str, Any]:
    """``"optimizer.lr=0.01"`` → ``("optimizer.lr", 0.01)``; values are TOML, else strings;
    ``"optimizer.momentum="`` → ``("optimizer.momentum", UNSET)`` (remove the key)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)+", key):
        raise UsageError(f"--set {text!r}: expected TABLE.KEY=VALUE (or TABLE.KEY= to remove the key), "
                         "e.g. --set optimizer.lr=0.01")
    raw = raw.strip()
    if not raw:
        return key, UNSET
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(doc: Mapping[str, Any], overrides: Iterable[str]) -> tuple[dict, frozenset[str]]:
    """A copy of ``doc`` with ``--set`` overrides applied, and the set of overridden keys
    (an empty value removes its key)."""
    out = copy.deepcopy(dict(doc))
    keys = set()
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise UsageError(f"--set {key}: '{'.'.join(parts[:i + 1])}' is not a table")
            node = nxt
        if value is UNSET:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
        keys.add(key)
        keys.add(parts[0])
    return out, frozenset(keys)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a one-line :class:`UsageError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read the config ({err.__class__.__name__})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: not valid TOML: {err}") from None
