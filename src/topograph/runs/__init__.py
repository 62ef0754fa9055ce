"""Training runs: a TOML config → a training loop → one resumable run directory per seed.

>>> import tempfile
>>> from topograph.runs import train, Run
>>> with tempfile.TemporaryDirectory() as out:
...     run = train({"optimizer": {"name": "momentum", "lr": 0.05}, "run": {"epochs": 1}}, out, progress=False)
...     again = Run.open(run.path)                   # a run directory, read back
...     print(len(again.metrics()), again.metrics()[-1]["test_acc"] > 0.5, again.snapshots()[1].shape[0])
2 True 2

Modules: :mod:`~topograph.runs.config` (schema, TOML, overrides), :mod:`~topograph.runs.trainer`
(the loop), :mod:`~topograph.runs.schedule` (LR schedules), :mod:`~topograph.runs.early_stopping`,
:mod:`~topograph.runs.store` (the run directory and :class:`Run`), :mod:`~topograph.io`
(atomic writes), :mod:`~topograph.runs.quickstart` (``topograph quickstart``).  See docs/runs.md.
"""

from topograph.runs.config import RunConfig, load_config
from topograph.runs.store import Run, load_model
from topograph.runs.trainer import run_dir_for, train, train_all

__all__ = ["Run", "RunConfig", "load_config", "load_model", "run_dir_for", "train", "train_all"]
