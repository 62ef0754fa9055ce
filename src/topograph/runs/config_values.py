"""The rules a run config's values must follow: each takes a value and returns it (normalised) or
raises :class:`Bad` with what is wrong; :mod:`topograph.runs.config` turns that into one line
naming the file and the key."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from topograph.errors import UsageError
from topograph.factories import FACTORY_FORMS, FactorySpec


class Bad(Exception):
    """A value broke a rule; the message says what is allowed."""


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def positive_int(v: Any) -> int:
    if not is_int(v) or v < 1:
        raise Bad("a positive integer")
    return int(v)


def nonneg_int(v: Any) -> int:
    if not is_int(v) or v < 0:
        raise Bad("a non-negative integer (0 = off / no limit)")
    return int(v)


def positive_number(v: Any) -> float:
    if not is_number(v) or not (v > 0) or math.isinf(v):
        raise Bad("a positive number")
    return float(v)


def nonneg_number(v: Any) -> float:
    if not is_number(v) or not (v >= 0) or math.isinf(v):
        raise Bad("a non-negative number")
    return float(v)


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Bad("true or false")
    return v


def string(v: Any) -> str:
    if not isinstance(v, str):
        raise Bad("a string")
    return v


def factory(v: Any) -> str:
    if v == "":
        return v
    try:
        return FactorySpec.parse(v, label="factory").text
    except UsageError:
        raise Bad(f"a factory {FACTORY_FORMS} (or \"\" for none)") from None


def table(v: Any) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        raise Bad("a table of keyword arguments, e.g. [data.kwargs] or kwargs = {n = 256}")
    return copy.deepcopy(dict(v))


def choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise Bad("one of " + ", ".join(repr(o) for o in options))
        return v

    return check


def run_name(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", v):
        raise Bad("a non-empty name of letters, digits, '.', '_', '+', '-' (a folder name)")
    return v


def seed_list(v: Any) -> list[int]:
    if is_int(v):
        v = [v]
    if (not isinstance(v, list) or not v or not all(is_int(s) and s >= 0 for s in v)
            or len(set(v)) != len(v)):
        raise Bad("a non-empty list of distinct non-negative integers, e.g. [0, 1, 2]")
    return [int(s) for s in v]


BEST_METRICS = ("train_loss", "val_loss", "test_loss")


def best_metrics(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(m in BEST_METRICS for m in v) or len(set(v)) != len(v):
        raise Bad("a list of distinct metric names among " + ", ".join(repr(m) for m in BEST_METRICS))
    return list(v)


def batch_size(v: Any) -> int | str:
    if v == "full":
        return "full"
    if not is_int(v) or v < 1:
        raise Bad('a positive integer or "full"')
    return int(v)


def val_size(v: Any) -> int | float:
    if is_int(v) and v >= 0:
        return int(v)
    if isinstance(v, float) and 0.0 <= v < 1.0:
        return v
    raise Bad("a number of samples (integer >= 0) or a fraction in [0, 1)")


def seed_or_false(v: Any) -> int | bool:
    if v is False:
        return False
    if not is_int(v) or v < 0:
        raise Bad("false or a non-negative integer seed")
    return int(v)


def device(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
        raise Bad('"auto", "cpu", "cuda", "cuda:N" or "mps"')
    return v


def hyperparameter(name: str, value: Any, default: Any) -> Any:
    """An optimizer hyperparameter ``name`` checked against the type of its default (and the range
    that ``lr``, ``momentum``, ``dampening``, ``weight_decay``, ``eps`` and ``betas`` allow)."""
    if name == "lr":
        if not is_number(value) or not value > 0 or math.isinf(value):
            raise Bad("a positive number")
        return float(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise Bad("true or false")
        return value
    if is_number(default):
        if not is_number(value):
            raise Bad("a number")
        if value < 0 and name in ("momentum", "dampening", "weight_decay", "eps"):
            raise Bad("a non-negative number")
        if name == "momentum" and not value < 1:
            raise Bad("a number in [0, 1) (the fraction of the previous step kept; 0.9 is usual)")
        if name == "dampening" and not value <= 1:
            raise Bad("a number in [0, 1]")
        if not math.isfinite(value):
            raise Bad("a finite number")
        return int(value) if is_int(default) and is_int(value) else value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise Bad("a string")
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, list) or len(value) != len(default) or not all(map(is_number, value)):
            raise Bad(f"a list of {len(default)} numbers")
        if name == "betas" and not all(0 <= v < 1 for v in value):
            raise Bad("a list of 2 numbers in [0, 1), e.g. [0.9, 0.999]")
        return [float(v) for v in value]
    return value
