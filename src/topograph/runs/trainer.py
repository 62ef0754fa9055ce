"""The training loop: config → one resumable run directory per seed.

One step on batch B (indices drawn by a seeded ``torch.randperm`` per epoch from a dedicated
``torch.Generator``; the data live as tensors on the device, so a batch is one
``index_select``, with no DataLoader and no per-sample Python) is always
``optimizer.step(closure)`` with ``closure(backward=True)``: zero the gradients, compute the
loss on B, call ``loss.backward()`` if asked, return the loss.  Plain SGD/Adam call it once,
Rolling Ball and Guided Exploration several times on the same batch, QuasiNewton on the full
training set (its entry in the registry is full batch).  Every call is counted: ``forward_passes``
(every forward pass) and ``backward_passes`` (forward+backward passes), per epoch and in total,
so optimizers can be compared at equal compute.

After each epoch the model is evaluated on the full splits through
:class:`topograph.core.Objective` (eval mode), a metrics row is written, early stopping is
updated (:mod:`topograph.runs.early_stopping`), snapshots are taken at their cadence, per-epoch
schedulers step (:mod:`topograph.runs.schedule`) and a checkpoint is written.  A checkpoint is
also written every ``run.checkpoint_every_steps`` steps inside an epoch.  It holds everything
the rest of the run depends on — model, optimizer and scheduler state, the global torch RNG
and the batch generator's state at the start of the epoch, the position in the epoch, the
epoch's running sums, counters, early-stopping state and the metrics so far — so a run
killed at any moment and started again ends with the same metrics (wall times excepted) and
the same weights as an uninterrupted one on the same machine (CPU).

``on_epoch(row)`` (:class:`Session`, :func:`train`) is the loop's hook for callers such as
Optuna pruning: it is called with each metrics row (a dict: ``epoch`` 0 is the initial point)
once the row is in ``metrics.csv`` AND in the checkpoint, so a callback that raises (e.g.
``optuna.TrialPruned``) stops the run at a resumable point.  Each ``run()`` delivers every
row of the run exactly once, in order: rows already written by an earlier, interrupted (or
finished) run first, then each new one as its epoch ends.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import topograph
from topograph.core import Objective
from topograph.errors import DamagedFileError, UsageError
from topograph.io import atomic_torch_save, atomic_write_json, atomic_write_text, load_weights, safe_torch_load
from topograph.optim import registry
from topograph.optim.closure import MinibatchClosure
from topograph.runs import schedule as sched
from topograph.runs.build import build_run_model, check_model_fits, load_run_dataset, resolve_device, run_loss
from topograph.runs.checks import (
    check_loss,
    dataset_fingerprint,
    first_difference,
    jsonable,
    toml_roundtrip,
)
from topograph.runs.config import RunConfig, as_config, result_view
from topograph.runs.config_files import read_toml
from topograph.runs.early_stopping import EarlyStopping
from topograph.runs.loop_state import LoopState
from topograph.runs.progress import progress_bar
from topograph.runs.store import (
    BEST_DIR,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    SNAPSHOT_DIR,
    SUMMARY_FILE,
    Run,
    metric_columns,
    restart_remedy,
    write_metrics,
)
from topograph.runs.toml_writer import dumps as toml_dumps

CHECKPOINT_FORMAT = 1


# ---------------------------------------------------------------------- helpers


def run_dir_for(config: RunConfig, seed: int, out_dir: str | Path | None = None) -> Path:
    """Where the run of ``seed`` lives: ``OUT/NAME/seed-S`` (OUT = ``out_dir`` or ``run.out_dir``)."""
    base = Path(out_dir) if out_dir is not None else Path(config.run.out_dir)
    return base / config.run.name / f"seed-{int(seed)}"


def _versions() -> dict[str, str]:
    return {"topograph": topograph.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def _rng_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


@dataclass
class _Parts:
    """What one run's loop works with, built once by :meth:`Session._build`."""

    cfg_doc: dict
    device: torch.device
    dataset: Any
    splits: dict[str, tuple[Tensor, Tensor]]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    objective: Objective            # full-split evaluation after each epoch (eval mode)
    closure: MinibatchClosure       # the training closure: counts every pass, offers the span
    generator: torch.Generator      # the batch order
    stopper: EarlyStopping
    monitor_split: str
    columns: list[str]
    batch_size: int
    batches: int
    full_batch: bool
    started: float = 0.0            # perf_counter() when this process took over
    elapsed0: float = 0.0           # seconds spent before this process

    def now(self) -> float:
        """Seconds of the run so far, across resumptions."""
        return self.elapsed0 + (time.perf_counter() - self.started)


# ---------------------------------------------------------------------- one run


class Session:
    """Trains one seed of one config into one run directory (resuming if it exists).

    Use :func:`train` / :func:`train_all`; this class holds the loop's state while it runs.
    ``on_epoch(row)`` is called with every metrics row (see the module's docstring): the rows
    of an earlier, interrupted or finished run first, then each new one after its checkpoint.
    """

    def __init__(self, config: RunConfig, seed: int, run_dir: Path, *,
                 progress: Any = None, task_label: str | None = None,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        if on_epoch is not None and not callable(on_epoch):
            raise UsageError(f"on_epoch must be a callable taking the metrics row, got {type(on_epoch).__name__}")
        self.config = config.for_seed(seed)
        self.seed = int(seed)
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.task_label = task_label or f"{config.run.name} seed {seed}"
        self.on_epoch = on_epoch

    def _deliver(self, row: Mapping[str, Any]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(dict(row))

    # ------------------------------------------------------------------ entry
    def run(self) -> Run:
        cfg_doc = self.config.to_dict()
        self._check_existing(cfg_doc)
        if (self.run_dir / SUMMARY_FILE).exists():  # finished: never redone
            run = Run.open(self.run_dir)
            if self.progress is not None:
                self.progress.add_task(f"{self.task_label} (done)", total=1, completed=1, info="")
            for row in run.metrics():
                self._deliver(row)
            return run
        device = resolve_device(self.config.run.device)
        threads = torch.get_num_threads()
        try:
            if self.config.run.threads:
                torch.set_num_threads(self.config.run.threads)
            with torch.random.fork_rng(devices=_rng_devices(device)):
                self._train(cfg_doc, device)
        finally:
            torch.set_num_threads(threads)
        return Run.open(self.run_dir)

    def _check_existing(self, cfg_doc: dict) -> None:
        path = self.run_dir / CONFIG_FILE
        if not path.exists():
            return
        if not (self.run_dir / CHECKPOINT_FILE).exists() and not (self.run_dir / SUMMARY_FILE).exists():
            return  # nothing trained yet (e.g. a config that failed at its first step): replaced
        stored = result_view(read_toml(path))
        wanted = result_view(toml_roundtrip(cfg_doc))
        if stored != wanted:
            key = first_difference(stored, wanted)
            raise UsageError(
                f"{self.run_dir}: holds a run with a different config ({key}); "
                "choose another output folder or run name, or delete that directory")

    # ------------------------------------------------------------------ the loop
    def _train(self, cfg_doc: dict, device: torch.device) -> None:
        parts = self._build(cfg_doc, device)
        st = self._start(parts)
        task = None
        if self.progress is not None:
            task = self.progress.add_task(self.task_label, total=self.config.run.epochs,
                                          completed=max(st.epoch, 0), info="")
        if not st.rows:
            self._initial_point(parts, st)
        while not st.stop_reason and st.epoch < self.config.run.epochs:
            row = self._epoch(parts, st)
            if task is not None:
                self.progress.update(task, completed=st.epoch,
                                     info=f"test acc {row['test_acc']:.3f}  loss {row['train_loss']:.4f}")
            self._deliver(row)
        self._finish(parts, st)
        if task is not None:
            self.progress.update(task, completed=self.config.run.epochs)

    def _build(self, cfg_doc: dict, device: torch.device) -> _Parts:
        """Data, model, optimizer, scheduler, evaluation objective and closure of the run."""
        cfg = self.config
        dataset = load_run_dataset(cfg_doc["data"], source=cfg.source)
        splits = {k: (x.to(device), y.to(device)) for k, (x, y) in dataset.splits.items()}
        if "test" not in dataset.splits:
            raise UsageError(f"{cfg.source}: data.factory {cfg.data.factory!r} returns no 'test' split, which "
                             "training evaluates after every epoch; return {\"train\": (x, y), \"test\": (x, y)}")
        x_train = splits["train"][0]
        n_train = int(x_train.shape[0])
        model = build_run_model(cfg_doc["model"], self.seed, source=cfg.source).to(device)
        classes = getattr(dataset, "num_classes", None) if cfg.model.loss == "cross-entropy" else None
        check_model_fits(model, x_train, model_label=cfg.model.label, data_label=cfg.data.label,
                         source=cfg.source, num_classes=classes, at_least=bool(cfg.data.factory),
                         hint="" if cfg.model.factory else f"; set model.num_classes = {classes}")
        check_loss(model, splits["train"], cfg, cfg.source)
        loss_fn = run_loss(cfg_doc["model"])
        try:
            optimizer = registry.build_optimizer(cfg.optimizer.name, model.parameters(), model=model,
                                                 **cfg.optimizer.hyperparameters)
        except ValueError as err:  # torch's own checks, e.g. Nesterov without momentum
            if isinstance(err, UsageError):
                raise
            raise UsageError(f"{cfg.source}: optimizer {cfg.optimizer.name!r} refuses its settings: {err}") from None
        monitor = cfg.early_stopping.monitor
        if monitor == "val" and "val" not in splits:
            raise UsageError(f"{cfg.source}: early_stopping.monitor is 'val' but data.val_size is 0")
        batch_size = n_train if cfg.full_batch else min(int(cfg.data.batch_size), n_train)
        return _Parts(
            cfg_doc=cfg_doc, device=device, dataset=dataset, splits=splits, model=model, optimizer=optimizer,
            scheduler=sched.build_scheduler(optimizer, cfg.schedule, epochs=cfg.run.epochs),
            objective=Objective(model, loss_fn, splits, device=device),
            closure=MinibatchClosure(model, loss_fn), generator=torch.Generator().manual_seed(self.seed),
            stopper=EarlyStopping(patience=cfg.early_stopping.patience, min_delta=cfg.early_stopping.min_delta,
                                  stop_on_nonfinite=cfg.early_stopping.stop_on_nonfinite),
            monitor_split="val" if (monitor == "val" or (monitor == "auto" and "val" in splits)) else "train",
            columns=metric_columns("val" in splits), batch_size=batch_size,
            batches=1 if cfg.full_batch else math.ceil(n_train / batch_size), full_batch=cfg.full_batch)

    def _start(self, parts: _Parts) -> LoopState:
        """Resume from the checkpoint if there is one, else seed a fresh run; write config.toml."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG_FILE, toml_dumps(
            parts.cfg_doc, header=f"resolved config of run {self.config.run.name} seed {self.seed} (topograph)"))
        st = LoopState()
        ckpt_path = self.run_dir / CHECKPOINT_FILE
        if ckpt_path.exists():
            self._resume(parts, st, ckpt_path)
            for row in st.rows:  # the rows of the interrupted run, before any new one
                self._deliver(row)
        else:
            # a fresh start (or a restart after the checkpoint was deleted): no file of an
            # earlier attempt may outlive it
            for stale in sorted((self.run_dir / SNAPSHOT_DIR).glob("*.pt")):
                stale.unlink()
            (self.run_dir / MODEL_FILE).unlink(missing_ok=True)
            torch.manual_seed(self.seed)
            st.perm_state = parts.generator.get_state()
        work = parts.closure.work
        work.forward_passes, work.backward_passes = st.forward_total, st.backward_total
        parts.closure.backward_samples = st.backward_samples
        parts.started, parts.elapsed0 = time.perf_counter(), st.elapsed
        return st

    def _resume(self, parts: _Parts, st: LoopState, ckpt_path: Path) -> None:
        """Everything from the checkpoint; a damaged or foreign one is one line saying how to restart."""
        remedy = restart_remedy(self.run_dir)
        ck = safe_torch_load(ckpt_path, map_location=parts.device, remedy=remedy)
        try:
            load_weights(parts.model, ck["model"], path=ckpt_path, remedy=remedy,
                         model=f"the run's model {self.config.model.name!r}")
            parts.optimizer.load_state_dict(ck["optimizer"])
            if parts.scheduler is not None and ck["scheduler"] is not None:
                parts.scheduler.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["rng"]["torch"].cpu())
            if parts.device.type == "cuda" and "cuda" in ck["rng"]:
                torch.cuda.set_rng_state(ck["rng"]["cuda"].cpu(), parts.device)
            parts.generator.set_state(ck["rng"]["perm"].cpu())
            parts.stopper.load_state_dict(ck["early_stopping"])
            st.load(ck["loop"], parts.device)
        except UsageError:  # load_weights' own line (a DamagedFileError)
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            raise DamagedFileError(ckpt_path, f"is not a resumable checkpoint of this run "
                                   f"({type(err).__name__}: {err})", remedy) from None

    def _initial_point(self, parts: _Parts, st: LoopState) -> None:
        """Row 0: the initial point, evaluated, written and checkpointed before any step."""
        st.ep_lr = sched.current_lr(parts.optimizer)
        row = self._row(parts, st, 0)
        row["train_seconds"], row["epoch_seconds"], row["wall_seconds"] = 0.0, 0.0, parts.now()
        st.rows.append(row)
        write_metrics(self.run_dir, st.rows, parts.columns)
        st.stop_reason = parts.stopper.update(row[f"{parts.monitor_split}_loss"], 0) or ""
        snaps = self.config.snapshots
        if snaps.every_epochs or snaps.every_steps or snaps.per_epoch:
            self._snapshot(parts, st, 0.0)
        self._keep_best(parts, st, row)
        st.epoch, st.batch = 0, 0
        self._checkpoint(parts, st)
        self._deliver(row)

    def _epoch(self, parts: _Parts, st: LoopState) -> dict[str, Any]:
        """The rest of the current epoch's steps (from ``st.batch``), then its row and checkpoint."""
        cfg, closure = self.config, parts.closure
        epoch = st.epoch
        if st.batch == 0:
            st.perm_state = parts.generator.get_state()
            st.ep_loss_sum = torch.zeros((), device=parts.device)
            st.ep_batches = 0
            st.ep_backward0, st.ep_forward0 = closure.work.backward_passes, closure.work.forward_passes
            st.ep_lr = sched.current_lr(parts.optimizer)
            st.ep_start = parts.now()
            st.ep_train_seconds = 0.0
        t_segment = parts.now()
        parts.generator.set_state(st.perm_state)
        x_train, y_train = parts.splits["train"]
        order = None if parts.full_batch else torch.randperm(x_train.shape[0], generator=parts.generator).to(parts.device)
        parts.model.train()
        hit_max = False
        for i in range(st.batch, parts.batches):
            if order is None:
                closure.batch = (x_train, y_train)
            else:
                idx = order[i * parts.batch_size:(i + 1) * parts.batch_size]
                closure.batch = (x_train.index_select(0, idx), y_train.index_select(0, idx))
            parts.optimizer.step(closure)
            if closure.first_loss is not None:
                st.ep_loss_sum += closure.first_loss
            st.ep_batches += 1
            st.step += 1
            st.batch = i + 1
            sched.after_batch(parts.scheduler, epoch, i, parts.batches)
            if cfg.snapshots.every_steps and st.step % cfg.snapshots.every_steps == 0:
                self._snapshot(parts, st, epoch + (i + 1) / parts.batches)
            per_epoch = cfg.snapshots.per_epoch
            if per_epoch and (st.batch * per_epoch) // parts.batches > (i * per_epoch) // parts.batches:
                self._snapshot(parts, st, epoch + st.batch / parts.batches)
            if cfg.run.max_steps and st.step >= cfg.run.max_steps:
                hit_max = True
                break
            if cfg.run.checkpoint_every_steps and st.step % cfg.run.checkpoint_every_steps == 0 \
                    and st.batch < parts.batches:
                self._checkpoint(parts, st)
        parts.model.eval()
        if parts.device.type == "cuda":
            torch.cuda.synchronize(parts.device)
        st.ep_train_seconds += parts.now() - t_segment
        return self._end_epoch(parts, st, epoch, hit_max)

    def _end_epoch(self, parts: _Parts, st: LoopState, epoch: int, hit_max: bool) -> dict[str, Any]:
        """The epoch's row, early stopping, snapshot, schedulers and checkpoint."""
        cfg = self.config
        st.epoch, st.batch = epoch + 1, 0
        row = self._row(parts, st, epoch + 1)
        t = parts.now()
        row["train_seconds"] = st.ep_train_seconds
        row["epoch_seconds"], row["wall_seconds"] = t - st.ep_start, t
        st.rows.append(row)
        write_metrics(self.run_dir, st.rows, parts.columns)
        reason = parts.stopper.update(row[f"{parts.monitor_split}_loss"], epoch + 1)
        if not math.isfinite(row["train_loss"]) and cfg.early_stopping.stop_on_nonfinite:
            reason = "non-finite loss"
        if reason:
            st.stop_reason = reason
        elif hit_max:
            st.stop_reason = f"max_steps ({cfg.run.max_steps}) reached"
        every = cfg.snapshots.every_epochs
        if every and (st.epoch % every == 0 or st.stop_reason or st.epoch == cfg.run.epochs):
            self._snapshot(parts, st, float(st.epoch))
        self._keep_best(parts, st, row)
        sched.after_epoch(parts.scheduler)
        st.perm_state = parts.generator.get_state()
        self._checkpoint(parts, st)
        return row

    def _row(self, parts: _Parts, st: LoopState, epoch: int) -> dict[str, Any]:
        """A metrics row: the full splits evaluated at the current point, and the work counts."""
        work = parts.closure.work
        row: dict[str, Any] = {"epoch": epoch, "step": st.step, "lr": st.ep_lr}
        row["train_batch_loss"] = (float(st.ep_loss_sum) / st.ep_batches) if st.ep_batches else math.nan
        for split in ("train", "val", "test"):
            if split in parts.splits:
                ev = parts.objective.evaluate(split=split)
                row[f"{split}_loss"], row[f"{split}_acc"] = ev.loss, ev.accuracy
        row["backward_passes"] = work.backward_passes - st.ep_backward0
        row["forward_passes"] = work.forward_passes - st.ep_forward0
        row["backward_passes_total"] = work.backward_passes
        row["forward_passes_total"] = work.forward_passes
        row["backward_samples_total"] = parts.closure.backward_samples
        return row

    def _snapshot(self, parts: _Parts, st: LoopState, epoch: float) -> None:
        if st.last_snapshot_step == st.step and st.snapshots > 0:
            return
        flat = torch.cat([p.detach().reshape(-1) for p in parts.model.parameters()]).cpu().clone()
        atomic_torch_save(self.run_dir / SNAPSHOT_DIR / f"{st.snapshots:06d}.pt",
                          {"epoch": float(epoch), "step": int(st.step), "params": flat})
        st.snapshots += 1
        st.last_snapshot_step = st.step

    def _keep_best(self, parts: _Parts, st: LoopState, row: Mapping[str, Any]) -> None:
        """Save the parameters when ``row`` improves (strictly) on every earlier row's value of a
        ``snapshots.best`` metric (the early-stopped solutions of seed 001's Table I)."""
        for metric in self.config.snapshots.best:
            value = float(row.get(metric, math.nan))
            earlier = [v for v in (float(r.get(metric, math.nan)) for r in st.rows[:-1]) if math.isfinite(v)]
            if math.isfinite(value) and (not earlier or value < min(earlier)):
                flat = torch.cat([p.detach().reshape(-1) for p in parts.model.parameters()]).cpu().clone()
                atomic_torch_save(self.run_dir / BEST_DIR / f"{metric}.pt", {
                    "epoch": int(row["epoch"]), "step": int(st.step), "metric": metric, "value": value,
                    "params": flat})

    def _checkpoint(self, parts: _Parts, st: LoopState, finished: bool = False) -> None:
        """Everything the rest of the run depends on, written atomically to checkpoints/last.pt."""
        work = parts.closure.work
        st.forward_total, st.backward_total = work.forward_passes, work.backward_passes
        st.backward_samples = parts.closure.backward_samples
        st.elapsed = parts.now()
        rng = {"torch": torch.get_rng_state(), "perm": st.perm_state}
        if parts.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(parts.device)
        atomic_torch_save(self.run_dir / CHECKPOINT_FILE, {
            "format": CHECKPOINT_FORMAT, "config": parts.cfg_doc, "seed": self.seed, "finished": finished,
            "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
            "rng": rng, "early_stopping": parts.stopper.state_dict(), "loop": st.state_dict(),
        })

    def _finish(self, parts: _Parts, st: LoopState) -> None:
        """model.pt, the final checkpoint and summary.json (written last: the run is done)."""
        cfg = self.config
        if not st.stop_reason:
            st.stop_reason = "epochs"
        st.elapsed = parts.now()
        atomic_torch_save(self.run_dir / MODEL_FILE, {k: v.detach().cpu() for k, v in parts.model.state_dict().items()})
        self._checkpoint(parts, st, finished=True)
        write_metrics(self.run_dir, st.rows, parts.columns)  # again: a deleted (damaged) table comes back
        last = st.rows[-1]
        work = parts.closure.work
        summary = {
            "status": "completed" if st.stop_reason == "epochs" else "stopped",
            "stop_reason": st.stop_reason, "name": cfg.run.name, "seed": self.seed,
            "epochs": int(last["epoch"]), "steps": int(st.step),
            "final": {k: last[k] for k in last if k.endswith(("_loss", "_acc"))},
            "best": {"epoch": parts.stopper.best_epoch, f"{parts.monitor_split}_loss": parts.stopper.best},
            "backward_passes": work.backward_passes, "forward_passes": work.forward_passes,
            "backward_samples": parts.closure.backward_samples, "seconds": st.elapsed,
            "n_params": sum(p.numel() for p in parts.model.parameters()),
            "optimizer": cfg.optimizer.name, "device": str(parts.device),
            "dataset": {"name": cfg.data.label, "fingerprint": dataset_fingerprint(parts.dataset),
                        **{f"n_{k}": int(v[0].shape[0]) for k, v in parts.splits.items()}},
            "versions": _versions(),
        }
        atomic_write_json(self.run_dir / SUMMARY_FILE, jsonable(summary))


def train(config: RunConfig | Mapping[str, Any] | str | Path, out_dir: str | Path | None = None, *,
          seed: int | None = None, progress: bool = True,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> Run:
    """Train one seed of ``config`` (a :class:`RunConfig`, a nested dict or a TOML path) into
    ``OUT/NAME/seed-S`` and return its :class:`Run`.

    ``seed`` defaults to the config's only seed (a config with several seeds needs ``seed=``,
    or use :func:`train_all`).  An existing run directory is resumed from its checkpoint; a
    finished one is returned as it is.  ``on_epoch(row)`` is called with every metrics row
    (the initial point as epoch 0, then each epoch) once it is checkpointed; rows of an
    earlier, interrupted or finished run are delivered first.  An exception it raises stops
    the run at a resumable point and propagates.
    """
    cfg = as_config(config)
    if seed is None:
        if len(cfg.run.seeds) != 1:
            raise UsageError(f"config has seeds {cfg.run.seeds}; pass seed= or use train_all")
        seed = cfg.run.seeds[0]
    with progress_bar(progress) as bar:
        return Session(cfg, seed, run_dir_for(cfg, seed, out_dir), progress=bar, on_epoch=on_epoch).run()


def train_all(config: RunConfig | Mapping[str, Any] | str | Path, out_dir: str | Path | None = None,
              *, progress: bool = True) -> list[Run]:
    """Train every seed of ``config`` (one run directory each); returns the runs in seed order."""
    cfg = as_config(config)
    with progress_bar(progress) as bar:
        return [Session(cfg, s, run_dir_for(cfg, s, out_dir), progress=bar).run() for s in cfg.run.seeds]


__all__ = ["Session", "run_dir_for", "train", "train_all"]
