"""One-line checks of GuidedExploration's settings (each names the setting and what it must be)."""

from __future__ import annotations

import math

import numpy as np

from topograph.errors import UsageError

#: where the slope bias d comes from: the improving probes, or a random direction (ablation)
BIAS_KINDS = ("probes", "random")


def check_settings(**s) -> None:
    for name in ("explore_every", "n_dirs", "hvp_iters", "seed"):
        minimum = 1 if name in ("explore_every", "n_dirs") else 0
        v = s[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise UsageError(f"GuidedExploration: {name} must be an integer >= {minimum}, got {v!r}")
    for name in ("sigma", "sigma_max", "sigma_growth", "beta", "margin", "tau_g", "tau_c", "temperature",
                 "lookahead_alpha"):
        v = s[name]
        if v is None and name == "temperature":
            continue
        positive = name in ("sigma", "sigma_max", "sigma_growth", "temperature")
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not (ok and (v > 0 if positive else v >= 0)):
            raise UsageError(f"GuidedExploration: {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                             f"got {v!r}")
    if s["sigma_growth"] < 1:
        raise UsageError(f"GuidedExploration: sigma_growth must be >= 1, got {s['sigma_growth']!r}")
    if s["lookahead_alpha"] > 1:
        raise UsageError(f"GuidedExploration: lookahead_alpha must lie in [0, 1], got {s['lookahead_alpha']!r}")
    if s["bias"] not in BIAS_KINDS:
        raise UsageError(f"GuidedExploration: bias must be one of {', '.join(map(repr, BIAS_KINDS))}, "
                         f"got {s['bias']!r}")


__all__ = ["BIAS_KINDS", "check_settings"]
