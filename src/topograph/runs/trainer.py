"""The training loop: config → one resumable run directory per seed.

One step on batch B (indices drawn by a seeded ``torch.randperm`` per epoch from a dedicated
``torch.Generator``; the data live as tensors on the device, so a batch is one
``index_select``, with no DataLoader and no per-sample Python) is always
``optimizer.step(closure)`` with ``closure(backward=True)``: zero the gradients, compute the
loss on B, call ``loss.backward()`` if asked, return the loss.  Plain SGD/Adam call it once,
Rolling Ball and Guided Exploration several times on the same batch, QuasiNewton on the full
training set (its entry in the registry is full batch).  Every call is counted: ``func_evals``
(forward passes) and ``grad_evals`` (forward+backward passes), per epoch and in total, so
optimizers can be compared at equal compute.

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

import contextlib
import math
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.errors import UsageError
from topograph.optim import registry
from topograph.runs import schedule as sched
from topograph.io import atomic_torch_save, atomic_write_json, atomic_write_text, safe_torch_load
from topograph.runs.config import RunConfig, as_config, read_toml, result_view
from topograph.runs.early_stopping import EarlyStopping
from topograph.runs.store import (
    BEST_DIR,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    SNAPSHOT_DIR,
    SUMMARY_FILE,
    Run,
    metric_columns,
    write_metrics,
)
from topograph.runs.toml_writer import dumps as toml_dumps

LOSSES = {"cross-entropy": F.cross_entropy}
CHECKPOINT_FORMAT = 1


# ---------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA if available, else CPU; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"run.device is {name!r} but CUDA is not available here; use \"cpu\" or \"auto\"")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"run.device is {name!r} but MPS is not available here; use \"cpu\" or \"auto\"")
    return dev


def load_run_dataset(data: Mapping[str, Any], *, source: str = "config"):
    """``topograph.data.load_dataset`` with a config's ``[data]`` table."""
    try:
        from topograph.data import load_dataset
    except ImportError as err:  # pragma: no cover - data lands with issue 2
        raise UsageError(f"{source}: topograph.data is not available ({err})") from None
    return load_dataset(
        data["name"],
        root=data.get("root") or None,
        download=bool(data.get("download", False)),
        val_size=data.get("val_size", 0),
        seed=int(data.get("seed", 0)),
        flatten=bool(data.get("flatten", False)),
        normalize=bool(data.get("normalize", True)),
        limit_train=data.get("limit_train") or None,
        limit_test=data.get("limit_test") or None,
    )


def run_dir_for(config: RunConfig, seed: int, out_dir: str | Path | None = None) -> Path:
    """Where the run of ``seed`` lives: ``OUT/NAME/seed-S`` (OUT = ``out_dir`` or ``run.out_dir``)."""
    base = Path(out_dir) if out_dir is not None else Path(config.run.out_dir)
    return base / config.run.name / f"seed-{int(seed)}"


def _versions() -> dict[str, str]:
    import topograph

    return {"topograph": topograph.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def _rng_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


class _Counters:
    """Closure-call counters (plain ints: no host synchronisation per step)."""

    __slots__ = ("func", "grad", "grad_samples")

    def __init__(self) -> None:
        self.func = 0
        self.grad = 0
        self.grad_samples = 0


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
        summary_path = self.run_dir / SUMMARY_FILE
        if summary_path.exists():  # finished: never redone
            run = Run.open(self.run_dir)
            if self.progress is not None:
                self.progress.add_task(f"{self.task_label} (done)", total=1, completed=1, info="")
            if self.on_epoch is not None:
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
        stored = result_view(read_toml(path))
        wanted = result_view(toml_roundtrip(cfg_doc))
        if stored != wanted:
            key = _first_difference(stored, wanted)
            raise UsageError(
                f"{self.run_dir}: holds a run with a different config ({key}); "
                "choose another output folder or run name, or delete that directory")

    # ------------------------------------------------------------------ set-up
    def _train(self, cfg_doc: dict, device: torch.device) -> None:
        cfg = self.config
        source = cfg.source
        dataset = load_run_dataset(cfg_doc["data"], source=source)
        splits = {k: (x.to(device), y.to(device)) for k, (x, y) in dataset.splits.items()}
        x_train, y_train = splits["train"]
        n_train = int(x_train.shape[0])
        has_val = "val" in splits

        from topograph.models import build_model

        model = build_model(cfg.model.name, seed=self.seed, **cfg.model.kwargs).to(device)
        _check_fits(model, x_train, cfg, source)
        loss_fn = LOSSES[cfg.model.loss]
        optimizer = registry.build_optimizer(cfg.optimizer.name, model.parameters(), model=model,
                                             **cfg.optimizer.hyperparameters)
        scheduler = sched.build_scheduler(optimizer, cfg.schedule, epochs=cfg.run.epochs)

        from topograph.core import Objective
        from topograph.core.objective import suggest_chunk_size
        from topograph.optim.span import SpanSource

        # evaluation chunks sized to the model's activations (large for MLPs, small for conv nets)
        chunk = suggest_chunk_size(model, x_train)
        objective = Objective(model, loss_fn, splits, buffers="eval", device=device, chunk_size=chunk)
        full_batch = cfg.full_batch
        batch_size = n_train if full_batch else min(int(cfg.data.batch_size), n_train)
        batches = 1 if full_batch else math.ceil(n_train / batch_size)
        generator = torch.Generator().manual_seed(self.seed)
        stopper = EarlyStopping(patience=cfg.early_stopping.patience,
                                min_delta=cfg.early_stopping.min_delta,
                                stop_on_nonfinite=cfg.early_stopping.stop_on_nonfinite)
        monitor = cfg.early_stopping.monitor
        if monitor == "val" and not has_val:
            raise UsageError(f"{source}: early_stopping.monitor is 'val' but data.val_size is 0")
        monitor_split = "val" if (monitor == "val" or (monitor == "auto" and has_val)) else "train"
        columns = metric_columns(has_val)

        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG_FILE, toml_dumps(
            cfg_doc, header=f"resolved config of run {cfg.run.name} seed {self.seed} (topograph)"))

        st = _LoopState()
        ckpt_path = self.run_dir / CHECKPOINT_FILE
        if ckpt_path.exists():
            ck = safe_torch_load(ckpt_path, map_location=device)
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            if scheduler is not None and ck["scheduler"] is not None:
                scheduler.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["rng"]["torch"].cpu())
            if device.type == "cuda" and "cuda" in ck["rng"]:
                torch.cuda.set_rng_state(ck["rng"]["cuda"].cpu(), device)
            generator.set_state(ck["rng"]["perm"].cpu())
            stopper.load_state_dict(ck["early_stopping"])
            st.load(ck["loop"], device)
            for row in st.rows:  # the rows of the interrupted run, before any new one
                self._deliver(row)
        else:
            torch.manual_seed(self.seed)
            st.perm_state = generator.get_state()

        counters = _Counters()
        counters.func, counters.grad, counters.grad_samples = st.func_total, st.grad_total, st.grad_samples
        batch_box: list[tuple[Tensor, Tensor]] = []
        step_loss: list[Tensor] = []

        def closure(backward: bool = True) -> Tensor:
            xb, yb = batch_box[0]
            model.zero_grad(set_to_none=True)
            with torch.set_grad_enabled(backward or torch.is_grad_enabled()):
                loss = loss_fn(model(xb), yb)
            counters.func += 1
            if backward:
                loss.backward()
                counters.grad += 1
                counters.grad_samples += int(yb.shape[0])
            if not step_loss:
                step_loss.append(loss.detach())
            # a forward-only call with gradients enabled gets the loss attached to its graph
            # (GuidedExploration's Lanczos differentiates it twice); otherwise a plain number
            return loss if (not backward and loss.requires_grad) else loss.detach()

        spans = SpanSource(model, loss_fn)

        def count_span_forwards(k: int) -> None:
            counters.func += k

        def count_span_backward() -> None:
            counters.grad += 1
            counters.grad_samples += int(batch_box[0][1].shape[0])

        def span(center: Tensor, vectors: Tensor, *, params: list[Tensor]):
            """Probes and line searches on the current batch in one pass (topograph.optim.span)."""
            return spans(batch_box[0], center, vectors, params=params, on_forward=count_span_forwards,
                         on_backward=count_span_backward)

        closure.span = span

        def evaluate_row(epoch: int) -> dict[str, Any]:
            row: dict[str, Any] = {"epoch": epoch, "step": st.step, "lr": st.ep_lr}
            row["train_batch_loss"] = (float(st.ep_loss_sum) / st.ep_batches) if st.ep_batches else math.nan
            for split in ("train", "val", "test"):
                if split in splits:
                    ev = objective.evaluate(split=split)
                    row[f"{split}_loss"], row[f"{split}_acc"] = ev.loss, ev.accuracy
            row["grad_evals"] = counters.grad - st.ep_grad0
            row["func_evals"] = counters.func - st.ep_func0
            row["grad_evals_total"] = counters.grad
            row["func_evals_total"] = counters.func
            row["grad_samples_total"] = counters.grad_samples
            return row

        def snapshot(epoch: float) -> None:
            if st.last_snapshot_step == st.step and st.snapshots > 0:
                return
            flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().clone()
            atomic_torch_save(self.run_dir / SNAPSHOT_DIR / f"{st.snapshots:06d}.pt",
                              {"epoch": float(epoch), "step": int(st.step), "params": flat})
            st.snapshots += 1
            st.last_snapshot_step = st.step

        def keep_best(row: Mapping[str, Any]) -> None:
            """Save the parameters when ``row`` improves (strictly) on every earlier row's value."""
            for metric in cfg.snapshots.best:
                value = float(row.get(metric, math.nan))
                earlier = [float(r.get(metric, math.nan)) for r in st.rows[:-1]]
                earlier = [v for v in earlier if math.isfinite(v)]
                if math.isfinite(value) and (not earlier or value < min(earlier)):
                    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().clone()
                    atomic_torch_save(self.run_dir / BEST_DIR / f"{metric}.pt", {
                        "epoch": int(row["epoch"]), "step": int(st.step), "metric": metric,
                        "value": value, "params": flat})

        def checkpoint(finished: bool = False) -> None:
            st.func_total, st.grad_total, st.grad_samples = counters.func, counters.grad, counters.grad_samples
            st.elapsed = now()
            rng = {"torch": torch.get_rng_state(), "perm": st.perm_state}
            if device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(device)
            atomic_torch_save(ckpt_path, {
                "format": CHECKPOINT_FORMAT,
                "config": cfg_doc,
                "seed": self.seed,
                "finished": finished,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng,
                "early_stopping": stopper.state_dict(),
                "loop": st.state_dict(),
            })

        task = None
        if self.progress is not None:
            task = self.progress.add_task(self.task_label, total=cfg.run.epochs,
                                          completed=max(st.epoch, 0), info="")

        snap_epochs, snap_steps = cfg.snapshots.every_epochs, cfg.snapshots.every_steps
        snap_per_epoch = cfg.snapshots.per_epoch
        ckpt_steps = cfg.run.checkpoint_every_steps
        max_steps = cfg.run.max_steps
        t_resume = time.perf_counter()
        elapsed0 = st.elapsed

        def now() -> float:
            return elapsed0 + (time.perf_counter() - t_resume)

        # ---- the initial point (epoch 0)
        if not st.rows:
            st.ep_lr = sched.current_lr(optimizer)
            row = evaluate_row(0)
            row["train_seconds"], row["epoch_seconds"], row["wall_seconds"] = 0.0, 0.0, now()
            st.rows.append(row)
            write_metrics(self.run_dir, st.rows, columns)
            st.stop_reason = stopper.update(row[f"{monitor_split}_loss"], 0) or ""
            if snap_epochs or snap_steps or snap_per_epoch:
                snapshot(0.0)
            keep_best(row)
            st.epoch, st.batch = 0, 0
            checkpoint()
            self._deliver(row)

        # ---- epochs
        while not st.stop_reason and st.epoch < cfg.run.epochs:
            epoch = st.epoch
            if st.batch == 0:
                st.perm_state = generator.get_state()
                st.ep_loss_sum = torch.zeros((), device=device)
                st.ep_batches = 0
                st.ep_grad0, st.ep_func0 = counters.grad, counters.func
                st.ep_lr = sched.current_lr(optimizer)
                st.ep_start = now()
                st.ep_train_seconds = 0.0
            t_segment = now()
            generator.set_state(st.perm_state)
            if full_batch:
                order = None
            else:
                order = torch.randperm(n_train, generator=generator).to(device)
            model.train()
            hit_max = False
            for i in range(st.batch, batches):
                if order is None:
                    batch_box[:] = [(x_train, y_train)]
                else:
                    idx = order[i * batch_size:(i + 1) * batch_size]
                    batch_box[:] = [(x_train.index_select(0, idx), y_train.index_select(0, idx))]
                step_loss.clear()
                optimizer.step(closure)
                if step_loss:
                    st.ep_loss_sum += step_loss[0]
                st.ep_batches += 1
                st.step += 1
                st.batch = i + 1
                sched.after_batch(scheduler, epoch, i, batches)
                if snap_steps and st.step % snap_steps == 0:
                    snapshot(epoch + (i + 1) / batches)
                if snap_per_epoch and (st.batch * snap_per_epoch) // batches > (i * snap_per_epoch) // batches:
                    snapshot(epoch + st.batch / batches)
                if max_steps and st.step >= max_steps:
                    hit_max = True
                    break
                if ckpt_steps and st.step % ckpt_steps == 0 and st.batch < batches:
                    checkpoint()
            model.eval()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            st.ep_train_seconds += now() - t_segment
            # ---- end of the epoch (or of the step budget)
            st.epoch, st.batch = epoch + 1, 0
            row = evaluate_row(epoch + 1)
            t = now()
            row["train_seconds"] = st.ep_train_seconds
            row["epoch_seconds"], row["wall_seconds"] = t - st.ep_start, t
            st.rows.append(row)
            write_metrics(self.run_dir, st.rows, columns)
            reason = stopper.update(row[f"{monitor_split}_loss"], epoch + 1)
            if not math.isfinite(row["train_loss"]) and cfg.early_stopping.stop_on_nonfinite:
                reason = "non-finite loss"
            if reason:
                st.stop_reason = reason
            elif hit_max:
                st.stop_reason = f"max_steps ({max_steps}) reached"
            if snap_epochs and (st.epoch % snap_epochs == 0 or st.stop_reason
                                or st.epoch == cfg.run.epochs):
                snapshot(float(st.epoch))
            keep_best(row)
            sched.after_epoch(scheduler)
            st.perm_state = generator.get_state()
            st.elapsed = now()
            checkpoint()
            if task is not None:
                self.progress.update(task, completed=st.epoch,
                                     info=f"test acc {row['test_acc']:.3f}  loss {row['train_loss']:.4f}")
            self._deliver(row)

        # ---- the end
        if not st.stop_reason:
            st.stop_reason = "epochs"
        st.elapsed = now()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_torch_save(self.run_dir / MODEL_FILE, state)
        checkpoint(finished=True)
        last = st.rows[-1]
        summary = {
            "status": "completed" if st.stop_reason == "epochs" else "stopped",
            "stop_reason": st.stop_reason,
            "name": cfg.run.name,
            "seed": self.seed,
            "epochs": int(last["epoch"]),
            "steps": int(st.step),
            "final": {k: last[k] for k in last if k.endswith(("_loss", "_acc"))},
            "best": {"epoch": stopper.best_epoch, f"{monitor_split}_loss": stopper.best},
            "grad_evals": counters.grad,
            "func_evals": counters.func,
            "grad_samples": counters.grad_samples,
            "seconds": st.elapsed,
            "n_params": sum(p.numel() for p in model.parameters()),
            "optimizer": cfg.optimizer.name,
            "device": str(device),
            "dataset": {"name": cfg.data.name, "fingerprint": _fingerprint(dataset),
                        **{f"n_{k}": int(v[0].shape[0]) for k, v in splits.items()}},
            "versions": _versions(),
        }
        atomic_write_json(self.run_dir / SUMMARY_FILE, _jsonable(summary))
        if task is not None:
            self.progress.update(task, completed=cfg.run.epochs)


class _LoopState:
    """The loop's resumable position and running sums (all plain numbers + a few tensors)."""

    def __init__(self) -> None:
        self.epoch = 0              # epochs completed; index of the epoch in progress
        self.batch = 0              # next batch inside that epoch
        self.step = 0               # optimizer steps so far
        self.perm_state: Tensor | None = None   # batch generator state at the epoch's start
        self.ep_loss_sum: Tensor = torch.zeros(())
        self.ep_batches = 0
        self.ep_grad0 = 0
        self.ep_func0 = 0
        self.ep_lr = math.nan
        self.ep_start = 0.0
        self.ep_train_seconds = 0.0
        self.func_total = 0
        self.grad_total = 0
        self.grad_samples = 0
        self.elapsed = 0.0
        self.snapshots = 0
        self.last_snapshot_step = -1
        self.stop_reason = ""
        self.rows: list[dict[str, Any]] = []

    _NUMBERS = ("epoch", "batch", "step", "ep_batches", "ep_grad0", "ep_func0", "ep_lr", "ep_start",
                "ep_train_seconds",
                "func_total", "grad_total", "grad_samples", "elapsed", "snapshots",
                "last_snapshot_step", "stop_reason")

    def state_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._NUMBERS}
        d["ep_loss_sum"] = self.ep_loss_sum.detach().cpu().clone()
        d["perm_state"] = self.perm_state
        d["rows"] = [dict(r) for r in self.rows]
        return d

    def load(self, d: Mapping[str, Any], device: torch.device) -> None:
        for k in self._NUMBERS:
            setattr(self, k, d[k])
        self.ep_loss_sum = d["ep_loss_sum"].to(device)
        self.perm_state = d["perm_state"].cpu()
        self.rows = [dict(r) for r in d["rows"]]


def _check_fits(model: nn.Module, x: Tensor, cfg: RunConfig, source: str) -> None:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x[:2])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"{source}: model {cfg.model.name!r} does not fit data {cfg.data.name!r} "
            f"(inputs of shape {tuple(x.shape[1:])}): {first}") from None
    finally:
        model.train(was)


def _fingerprint(dataset: Any) -> str | None:
    fp = getattr(dataset, "fingerprint", None)
    try:
        return str(fp()) if callable(fp) else None
    except Exception:  # noqa: BLE001 - a fingerprint is informative only
        return None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/inf
    return obj


def toml_roundtrip(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as it reads back from ``config.toml`` (drops ``None``, tuples become lists)."""
    import tomllib

    return tomllib.loads(toml_dumps(doc))


def _first_difference(a: Mapping, b: Mapping, prefix: str = "") -> str:
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        if k not in a:
            return f"{key} is new"
        if k not in b:
            return f"{key} was {a[k]!r}"
        if isinstance(a[k], Mapping) and isinstance(b[k], Mapping):
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], key + ".")
        elif a[k] != b[k]:
            return f"{key} was {a[k]!r}, now {b[k]!r}"
    return "?"


# ---------------------------------------------------------------------- public entry points


@contextlib.contextmanager
def _progress_bar(enabled: bool):
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("epochs"), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                  transient=False) as progress:
        yield progress


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
    with _progress_bar(progress) as bar:
        return Session(cfg, seed, run_dir_for(cfg, seed, out_dir), progress=bar, on_epoch=on_epoch).run()


def train_all(config: RunConfig | Mapping[str, Any] | str | Path, out_dir: str | Path | None = None,
              *, progress: bool = True) -> list[Run]:
    """Train every seed of ``config`` (one run directory each); returns the runs in seed order."""
    cfg = as_config(config)
    with _progress_bar(progress) as bar:
        return [Session(cfg, s, run_dir_for(cfg, s, out_dir), progress=bar).run() for s in cfg.run.seeds]


__all__ = ["LOSSES", "Session", "load_run_dataset", "resolve_device", "run_dir_for", "train", "train_all"]
