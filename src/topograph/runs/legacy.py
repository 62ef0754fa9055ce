"""Names that earlier versions of topograph wrote into run directories, and their current names.

Until 2026-12 the metrics table, ``summary.json`` and the checkpoint's loop state counted work
as ``grad_evals`` (forward+backward passes) and ``func_evals`` (forward passes); they now use
the vocabulary of :class:`topograph.core.Work` (``backward_passes``, ``forward_passes``).  Run
directories written before the change are read (and resumed) through :func:`current_names`, so
a study that resumes an old run writes its remaining rows under the current names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: earlier name -> current name (metrics columns, summary keys, checkpoint loop-state keys)
RENAMED: dict[str, str] = {
    "grad_evals": "backward_passes",
    "func_evals": "forward_passes",
    "grad_evals_total": "backward_passes_total",
    "func_evals_total": "forward_passes_total",
    "grad_samples_total": "backward_samples_total",
    "grad_samples": "backward_samples",
    "ep_grad0": "ep_backward0",
    "ep_func0": "ep_forward0",
    "grad_total": "backward_total",
    "func_total": "forward_total",
}


def current_names(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` with every key an earlier version wrote under its current name (order kept).

    >>> current_names({"epoch": 1, "grad_evals": 10, "func_evals": 19})
    {'epoch': 1, 'backward_passes': 10, 'forward_passes': 19}
    """
    return {RENAMED.get(k, k): v for k, v in mapping.items()}


__all__ = ["RENAMED", "current_names"]
