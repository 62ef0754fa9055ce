"""The run store: one directory per run, written atomically, read back through :class:`Run`.

Layout of a run directory (``OUT/NAME/seed-S/``)::

    config.toml            the resolved config of this run (run.seeds = [S])
    metrics.csv            one row per epoch (row 0 = the initial point); see METRIC_COLUMNS
    checkpoints/last.pt    the latest resumable checkpoint (model, optimizer, scheduler, RNG
                           states, epoch/step, early-stopping state, metrics so far)
    snapshots/NNNNNN.pt    {"epoch": float, "step": int, "params": flat parameter vector}
    best/METRIC.pt         with ``snapshots.best``: the parameters at the (first) minimum of a
                           per-epoch metric so far, {"epoch", "step", "metric", "value", "params"}
    model.pt               final weights (a state_dict)
    summary.json           written last: status, stop reason, final metrics, compute, versions

Every file is written by :mod:`topograph.io` (temp file + ``os.replace``) and every
``.pt`` file loads with ``torch.load(weights_only=True)``.  A file of a run that is damaged,
foreign or does not fit the run's model raises one :class:`~topograph.errors.DamagedFileError`
line naming the file and the way back: :func:`resume_command` rewrites ``model.pt`` from the
checkpoint, deleting ``checkpoints/last.pt`` restarts the run from epoch 0.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from topograph.core import Objective
from topograph.errors import DamagedFileError, UsageError
from topograph.io import atomic_write_text, load_weights, safe_torch_load
from topograph.runs.build import build_run_model, load_run_dataset, run_loss
from topograph.runs.config_files import read_toml
from topograph.runs.legacy import current_names

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "checkpoints/last.pt"
SNAPSHOT_DIR = "snapshots"
BEST_DIR = "best"
MODEL_FILE = "model.pt"
SUMMARY_FILE = "summary.json"

#: integer-valued metric columns (all others are floats)
INT_COLUMNS = frozenset({"epoch", "step", "backward_passes", "forward_passes", "backward_passes_total",
                         "forward_passes_total", "backward_samples_total"})
#: columns that depend on the machine's speed, not on the computation
TIME_COLUMNS = ("train_seconds", "epoch_seconds", "wall_seconds")


def metric_columns(has_val: bool) -> list[str]:
    """The columns of ``metrics.csv``.

    ``epoch`` (0 = initial point), ``step`` (optimizer steps so far), ``lr`` (rate of the
    epoch's first step), ``train_batch_loss`` (mean of the minibatch losses seen during the
    epoch, before each update), full-split ``train/val/test_loss`` and ``_acc`` (evaluated
    through :class:`topograph.core.Objective` in eval mode after the epoch), ``backward_passes`` and
    ``forward_passes`` (forward+backward passes, and all forward passes, on one batch during the
    epoch, every closure call counted), their running totals, ``backward_samples_total`` (samples through
    backward passes so far: divide by the training-set size for epochs of gradient compute),
    ``train_seconds`` (the epoch's optimizer steps alone), ``epoch_seconds`` (steps plus the
    full-split evaluation and writes) and ``wall_seconds`` (since the start of the run).
    """
    cols = ["epoch", "step", "lr", "train_batch_loss", "train_loss", "train_acc"]
    if has_val:
        cols += ["val_loss", "val_acc"]
    cols += ["test_loss", "test_acc", "backward_passes", "forward_passes", "backward_passes_total",
             "forward_passes_total", "backward_samples_total", *TIME_COLUMNS]
    return cols


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)  # exact round trip
    return str(v)


def metrics_csv(rows: list[Mapping[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c, math.nan)) for c in columns])
    return buf.getvalue()


def write_metrics(run_dir: Path, rows: list[Mapping[str, Any]], columns: list[str]) -> None:
    atomic_write_text(run_dir / METRICS_FILE, metrics_csv(rows, columns))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` with ints and floats parsed."""
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = []
            for raw in csv.DictReader(fh):
                r = current_names(raw)  # a table written before the renaming reads the same
                rows.append({k: (int(v) if k in INT_COLUMNS else float(v)) for k, v in r.items()})
            return rows
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error):
        raise DamagedFileError(path, "is damaged: not the metrics table a run writes",
                               _rewrite_remedy(path.parent)) from None


# ---------------------------------------------------------------------- remedies for damaged files


def resume_command(run_dir: Path) -> str:
    """The command that resumes (or finishes) the run in ``run_dir``: ``topograph train`` of its
    own ``config.toml`` into the folder that holds it (``OUT`` of ``OUT/NAME/seed-S``)."""
    return f"topograph train {run_dir / CONFIG_FILE} --out {run_dir.parent.parent}"


def _rewrite_remedy(run_dir: Path) -> str:
    """How to rewrite a finished run's ``model.pt``/``summary.json``/``metrics.csv``: from the
    checkpoint, which holds the final weights and every metrics row."""
    return (f"rewrite it from the run's checkpoint: delete it and {run_dir / SUMMARY_FILE}, then run "
            f"`{resume_command(run_dir)}`")


def restart_remedy(run_dir: Path) -> str:
    """How to get past a damaged checkpoint: for a finished run, use its final weights (the
    checkpoint only serves resuming); else delete it and train the run again from epoch 0."""
    if (run_dir / SUMMARY_FILE).exists():
        return (f"the run is finished, so only resuming needed it: give the run directory {run_dir} "
                "(its final weights, model.pt) instead")
    return (f"the run cannot resume from it: delete it to restart the run from epoch 0 "
            f"(`rm {run_dir / CHECKPOINT_FILE}`, then `{resume_command(run_dir)}`)")


def _mismatch_remedy(run_dir: Path) -> str:
    return (f"the file belongs to another model, or {run_dir / CONFIG_FILE} was edited: restore the "
            "config the run was trained with, or train the run again")


def _find_run_dir(path: Path) -> Path:
    """The run directory that holds ``path`` (itself, or up to two levels up for files)."""
    for cand in (path, path.parent, path.parent.parent):
        if (cand / CONFIG_FILE).is_file():
            return cand
    raise UsageError(f"{path}: not a run directory or a file inside one (no {CONFIG_FILE} found)")


class Run:
    """A run directory, read back.  Open with :meth:`Run.open`; nothing is loaded eagerly
    except the config and the summary (both small).

    Attributes
    ----------
    path: the run directory.
    config: the resolved config (nested dict, as in ``config.toml``).
    summary: the contents of ``summary.json`` (``{}`` while the run is unfinished).
    """

    def __init__(self, path: Path, config: dict[str, Any], summary: dict[str, Any]) -> None:
        self.path = path
        self.config = config
        self.summary = summary

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open the run directory ``path`` (or the run that holds the file ``path``)."""
        run_dir = _find_run_dir(Path(path))
        config = read_toml(run_dir / CONFIG_FILE)
        for table in ("run", "model"):
            if not isinstance(config.get(table), dict):
                raise DamagedFileError(run_dir / CONFIG_FILE, f"has no [{table}] table: not the config "
                                       "a run writes", "restore it, or train the run again")
        summary_path = run_dir / SUMMARY_FILE
        summary = {}
        if summary_path.exists():
            try:
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                summary = None
            if not isinstance(summary, dict):
                raise DamagedFileError(summary_path, "is damaged: not the JSON summary a run writes",
                                       _rewrite_remedy(run_dir))
        return cls(run_dir, config, current_names(summary))

    def __repr__(self) -> str:
        state = self.summary.get("status", "unfinished")
        return f"Run({str(self.path)!r}, {state})"

    # ------------------------------------------------------------------ facts
    @property
    def finished(self) -> bool:
        """True once ``summary.json`` exists (the run ended: completed or stopped early)."""
        return bool(self.summary)

    @property
    def seed(self) -> int:
        return int(self.config["run"].get("seeds", [0])[0])

    @property
    def name(self) -> str:
        return str(self.config["run"].get("name", "run"))

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv`` (row 0 = the initial point)."""
        return read_metrics(self.path / METRICS_FILE)

    # ------------------------------------------------------------------ models and data
    def build_model(self) -> nn.Module:
        """A fresh model of the run's architecture (initialised with the run's seed).  A model of
        ``[model] factory`` is built by importing and calling that factory again: its module
        must be importable here (from the folder the run was trained in, or installed)."""
        if self.config["model"].get("factory"):
            return build_run_model(self.config["model"], self.seed, source=str(self.path / CONFIG_FILE))
        try:
            return build_run_model({"name": "mlp-digits", **self.config["model"]}, self.seed)
        except (TypeError, ValueError) as err:  # an edited config: unknown name or keyword
            why = str(err) if isinstance(err, UsageError) else f"{type(err).__name__}: {err}"
            raise DamagedFileError(self.path / CONFIG_FILE, f"describes no model that can be built ({why})",
                                   _mismatch_remedy(self.path)) from None

    def load_weights_file(self, path: str | Path, module: nn.Module | None = None) -> nn.Module:
        """``module`` (default: a fresh :meth:`build_model`) with the weights of ``path``: a
        state_dict file (``model.pt``) or a checkpoint (its ``"model"`` entry).  A damaged,
        foreign or mismatching file is one :class:`DamagedFileError` line with the way back."""
        path = Path(path)
        module = self.build_model() if module is None else module
        is_checkpoint = path.parent.name == CHECKPOINT_DIR
        remedy = (restart_remedy(self.path) if is_checkpoint and path.name == Path(CHECKPOINT_FILE).name
                  else _rewrite_remedy(self.path) if path == self.path / MODEL_FILE
                  else "give another file, or the run directory")
        state = safe_torch_load(path, remedy=remedy)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a checkpoint
            state = state["model"]
        model_name = self.config["model"].get("factory") or self.config["model"].get("name", "?")
        return load_weights(module, state, path=path, remedy=_mismatch_remedy(self.path),
                            model=f"the run's model {model_name!r} of {self.path / CONFIG_FILE}")

    def model(self, which: str = "final") -> nn.Module:
        """The model with the weights of ``which``: ``"final"`` (``model.pt``), ``"last"`` (the
        latest checkpoint) or ``"initial"`` (the initialisation, rebuilt from the seed)."""
        if which == "initial":
            return self.build_model()
        if which == "final":
            if not (self.path / MODEL_FILE).exists():
                raise UsageError(f"{self.path}: the run has no {MODEL_FILE} yet (unfinished); "
                                 "use which='last' for its latest checkpoint")
            return self.load_weights_file(self.path / MODEL_FILE)
        if which == "last":
            if not (self.path / CHECKPOINT_FILE).exists():
                raise UsageError(f"{self.path}: the run has no checkpoint yet")
            return self.load_weights_file(self.path / CHECKPOINT_FILE)
        raise UsageError(f"which={which!r}; use 'final', 'last' or 'initial'")

    def dataset(self):
        """The run's data set (``topograph.data.load_dataset`` with the run's data settings, or
        the run's ``[data] factory`` called again: its module must be importable here)."""
        return load_run_dataset(self.config["data"], source=str(self.path / CONFIG_FILE))

    def loss_fn(self):
        """The run's loss function."""
        return run_loss(self.config["model"])

    def objective(self, data: Any = None, *, which: str = "final", batchnorm: str = "eval",
                  chunk_size: int | None = None) -> Objective:
        """A :class:`topograph.core.Objective` of the run's model (weights ``which``), loss and
        data (``data`` if given — a split pair, a dict of splits or a Dataset — else the run's
        data set), under the BatchNorm policy ``batchnorm``; ``chunk_size=None``: chosen from the
        model's activations, as everywhere."""
        return Objective(self.model(which), self.loss_fn(), self.dataset() if data is None else data,
                         batchnorm=batchnorm, chunk_size=chunk_size)

    def snapshots(self) -> tuple[list[tuple[float, int]], torch.Tensor]:
        """``([(epoch, step), ...], S×P tensor)`` of the saved parameter snapshots, in order.

        ``epoch`` is fractional for snapshots taken inside an epoch.
        """
        files = sorted((self.path / SNAPSHOT_DIR).glob("*.pt"))
        labels, vectors = [], []
        size = None
        remedy = "delete it (the trajectory then skips that point) or train the run again"
        for f in files:
            snap = safe_torch_load(f, remedy=remedy)
            if (not isinstance(snap, dict) or not isinstance(snap.get("params"), torch.Tensor)
                    or snap["params"].dim() != 1 or not isinstance(snap.get("epoch"), (int, float))
                    or not isinstance(snap.get("step"), int)):
                raise DamagedFileError(f, "is not a parameter snapshot of a run (epoch, step, params)", remedy)
            if size is None:
                size = sum(p.numel() for p in self.build_model().parameters())
            if snap["params"].numel() != size:
                raise DamagedFileError(f, f"does not match the run's model ({snap['params'].numel()} "
                                       f"parameters in the file, {size} in the model)", remedy)
            labels.append((float(snap["epoch"]), int(snap["step"])))
            vectors.append(snap["params"])
        if not vectors:
            return [], torch.empty(0, 0)
        return labels, torch.stack(vectors)


    def best_snapshot(self, metric: str) -> dict[str, Any]:
        """The parameters at the minimum of the per-epoch ``metric`` (``"train_loss"``,
        ``"val_loss"`` or ``"test_loss"``) — early-stopped weights — saved with
        ``snapshots.best = [metric]``: ``{"epoch": int, "step": int, "value": float,
        "params": flat vector}``; the first epoch wins a tie."""
        path = self.path / BEST_DIR / f"{metric}.pt"
        if not path.exists():
            raise UsageError(f"{self.path}: no {BEST_DIR}/{metric}.pt; train with "
                             f"snapshots.best = [\"{metric}\"] to keep the weights at that minimum")
        return dict(safe_torch_load(path))


def load_model(path: str | Path, *, which: str | None = None) -> nn.Module:
    """A model with weights, from a run directory (final weights, or the latest checkpoint if
    unfinished), a run's ``model.pt`` or a checkpoint file."""
    path = Path(path)
    run = Run.open(path)
    if which is None:
        if path.is_file() and path.parent.name == CHECKPOINT_DIR:
            which = "last"
        elif path.is_file():
            which = "final"
        else:
            which = "final" if (run.path / MODEL_FILE).exists() else "last"
    if path.is_file() and which in ("final", "last"):
        return run.load_weights_file(path)
    return run.model(which)


__all__ = ["Run", "load_model", "metric_columns", "read_metrics", "restart_remedy", "resume_command",
           "write_metrics"]
