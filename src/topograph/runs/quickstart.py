"""``topograph quickstart``: SGD, SGD + momentum and Adam on digits, in well under a minute.

The three runs use scikit-learn's bundled 8×8 digits (no download) and the small MLP
``mlp-digits`` (64-32-10), 30 epochs of batch 32, with hand-tuned learning rates.  They are
ordinary run directories (``OUT/<optimizer>/seed-0``), so re-running skips finished runs and
resumes interrupted ones, and later steps (maps, curvature, paths) open them with
:meth:`topograph.runs.Run.open`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topograph.runs.config import RunConfig
from topograph.runs.progress import progress_bar
from topograph.runs.report import ResultRow, results_table
from topograph.runs.store import Run
from topograph.runs.trainer import Session

DEFAULT_OUT = Path("topograph-runs") / "quickstart"

_BASE: dict[str, Any] = {
    "run": {"epochs": 30, "seeds": [0], "threads": 1},  # one thread is fastest for a 2,410-weight MLP
    "data": {"name": "digits", "batch_size": 32},
    "model": {"name": "mlp-digits"},
    "early_stopping": {"patience": 5},
    "snapshots": {"every_epochs": 1},
}

#: the quickstart's runs: name -> optimizer table
QUICKSTART_OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"name": "sgd", "lr": 0.1},
    "momentum": {"name": "momentum", "lr": 0.02, "momentum": 0.9},
    "adam": {"name": "adam", "lr": 0.003},
}


def quickstart_configs() -> dict[str, RunConfig]:
    """The run configs of the quickstart, by run name."""
    out = {}
    for name, opt in QUICKSTART_OPTIMIZERS.items():
        doc = copy.deepcopy(_BASE)
        doc["run"]["name"] = name
        doc["optimizer"] = dict(opt)
        out[name] = RunConfig.from_dict(doc, source=f"quickstart:{name}")
    return out


@dataclass
class QuickstartResult:
    """The quickstart's runs and table rows (``rows[i]`` belongs to ``runs[i]``)."""

    out_dir: Path
    runs: list[Run] = field(default_factory=list)
    rows: list[ResultRow] = field(default_factory=list)
    seconds: float = 0.0

    def table(self):
        """A rich table of the final test accuracy and loss, train loss, epochs, backward passes."""
        return results_table(self.runs, title="topograph quickstart — digits, MLP 64-32-10")


def run_quickstart(out_dir: str | Path = DEFAULT_OUT, *, progress: bool = True) -> QuickstartResult:
    """Train (or reuse) the quickstart runs under ``out_dir``; return runs and table rows."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    result = QuickstartResult(out_dir=out_dir)
    with progress_bar(progress) as bar:
        for name, cfg in quickstart_configs().items():
            seed = cfg.run.seeds[0]
            session = Session(cfg, seed, out_dir / name / f"seed-{seed}", progress=bar, task_label=name)
            result.runs.append(session.run())
    result.rows = [ResultRow.of(r) for r in result.runs]
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["DEFAULT_OUT", "QUICKSTART_OPTIMIZERS", "QuickstartResult", "quickstart_configs", "run_quickstart"]
