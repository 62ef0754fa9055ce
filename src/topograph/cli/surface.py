"""``topograph surface``: a loss/accuracy map around a saved run, a checkpoint or a weights file.

    topograph surface RUN_DIR_OR_CHECKPOINT [--dim 1|2] [--range -1 1] [--resolution 31]
        [--norm filter] [--seed 0] [--split train|test] [--batch-size B] [--trajectory]
        [--out FILE.h5] [--plot]
    topograph surface --model NAME_OR_FACTORY --weights FILE.pt --data NAME_OR_FACTORY [...]
    topograph surface --config MODEL_AND_DATA.toml --weights FILE.pt [...]

The model comes from ``topograph.runs.load_model`` (final weights of a run directory, or the
given checkpoint), the data and loss from its run; or from a plain weights file with the model
and data named by ``--model``/``--data`` or ``--config`` (:mod:`topograph.cli.sources`), the
default output then beside the weights file.  The grid is written block by block to the
HDF5 file (default: ``surface-….h5`` in the run directory), so re-running the same command
after a kill computes only the missing points.  ``--trajectory`` uses the PCA plane of the
run's snapshots and overlays the path.  Under ``torchrun`` the grid is shared between the
processes (docs/maps.md).  Thin wrapper over :mod:`topograph.landscape`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import click
import torch
import torch.distributed as dist

from topograph.cli.checks import check_split, check_writable
from topograph.cli.sources import SourceOptions, WeightsSource, source_options, weights_source
from topograph.core import Objective
from topograph.core.directions import NORMS
from topograph.errors import UsageError
from topograph.landscape import compute_surface, pca_directions, project, random_directions
from topograph.landscape.plots import contour_plot, curve_plot, surface_3d_plot
from topograph.landscape.trajectory import covering_range
from topograph.runs import Run, load_model

#: file name endings of an HDF5 surface file
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def _default_out(run_dir: Path, dim: int, norm: str, seed: int, split: str, batch_size, trajectory: bool,
                 prefix: str = "") -> Path:
    kind = "pca" if trajectory else f"{norm}-seed{seed}"
    data = split if batch_size is None else f"{split}-batch{batch_size}"
    return run_dir / f"{prefix}surface-{dim}d-{kind}-{data}.h5"


@contextlib.contextmanager
def _process_group() -> Iterator[None]:
    """Under torchrun (WORLD_SIZE > 1) join the process group (NCCL with GPUs, else gloo) for the
    body, and leave it cleanly: every rank waits at a barrier, then destroys the group.

    A process that exits with the group still alive leaves its destruction to the interpreter's
    shutdown, where gloo's threads may still be running; the C++ runtime then aborts
    ("terminate called without an active exception", SIGABRT) and torchrun reports the job
    FAILED although the file is complete.  After an error the group is destroyed without the
    barrier (the other ranks may never reach it).
    """

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        yield
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        yield
    except BaseException:
        dist.destroy_process_group()
        raise
    dist.barrier()
    dist.destroy_process_group()


@click.command("surface", epilog="""\b
Examples:
  topograph surface runs/adam/seed-0 --plot
  topograph surface --model mypkg.nets:resnet20 --weights my.pt --data mnist --limit-train 2000 --plot
  topograph surface --model nets.py:Net --model-arg width=16 --weights my.pt --data mypkg.data:load
  topograph surface --config model-and-data.toml --weights my.pt

A weights file is a state_dict saved with torch.save (loaded with weights_only=True); its
model and data come from --model/--data or from --config, never from a run directory.""")
@click.argument("source", metavar="[RUN_DIR_OR_CHECKPOINT]", type=click.Path(), required=False)
@click.option("--dim", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="1: a curve along one direction; 2: a plane.")
@click.option("--range", "range_", nargs=2, type=float, default=None,
              help="Coefficient range LO HI along each direction [default: -1 1; with --trajectory, "
                   "a window that holds the whole path].")
@click.option("--resolution", type=int, default=31, show_default=True, help="Points per axis.")
@click.option("--norm", type=click.Choice(list(NORMS)), default="filter", show_default=True,
              help="Normalisation of the random directions (Li et al. 2018).")
@click.option("--keep-1d", is_flag=True, help="Keep bias/BatchNorm entries (d = θ) instead of zeroing them.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random directions.")
@click.option("--split", default="train", show_default=True, help="Data split to evaluate (train, test, val).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Evaluate on one fixed batch of this size (at most the split's size).")
@click.option("--batch-seed", type=int, default=0, show_default=True, help="Seed of the fixed batch.")
@click.option("--trajectory", is_flag=True, help="PCA plane of the run's snapshots, path overlaid.")
@click.option("--engine", type=click.Choice(["auto", "first-layer", "generic"]), default="auto",
              show_default=True, help="Evaluation engine.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="HDF5 file (resumed if it exists).")
@click.option("--plot", is_flag=True, help="Also draw the figures (PNG and SVG next to the file).")
@source_options
def command(source, dim, range_, resolution, norm, keep_1d, seed, split, batch_size, batch_seed,
            trajectory, engine, out, plot, sources: SourceOptions):
    """Loss and accuracy surface around a model (filter-normalised directions): a run's
    (RUN_DIR_OR_CHECKPOINT), or the weights file of --weights with --model/--data or --config."""
    opts = sources
    if source is None and not opts.given():
        raise UsageError("give a run directory (or a checkpoint inside one), or --weights FILE with --model "
                         "and --data (see `topograph surface --help`)")
    path = Path(source) if source is not None else None
    if path is not None and not path.exists():
        raise UsageError(f"{path}: no such run directory or checkpoint file")
    if resolution < 1:
        raise UsageError(f"--resolution {resolution}: must be a positive integer (points per axis)")
    if range_ is not None and not range_[0] < range_[1]:
        raise UsageError(f"--range {range_[0]:g} {range_[1]:g} is inverted or empty: LO must be below HI")
    dim = int(dim)
    if trajectory and dim != 2:
        raise UsageError("--trajectory needs --dim 2 (a PCA plane)")
    if trajectory and path is None:
        raise UsageError("--trajectory needs a run directory (the PCA plane of its snapshots); a weights file "
                         "has no trajectory")
    if plot and resolution < 2:
        raise UsageError(f"--plot needs --resolution 2 or more (a curve or contour of {resolution} point "
                         "cannot be drawn); raise --resolution or leave out --plot")
    if out is not None:
        if Path(out).suffix.lower() not in HDF5_SUFFIXES:
            raise UsageError(f"--out {out}: the surface is an HDF5 grid; give a file name ending in .h5 "
                             "(--plot writes the figures beside it)")
        check_writable(out, label="--out", kind="file")

    weights = weights_source(opts, [source] if source is not None else [], count=1, command="surface")
    with _process_group():
        _surface(path if weights is None else weights, dim, range_, resolution, norm, keep_1d, seed, split,
                 batch_size, batch_seed, trajectory, engine, out, plot)


def _surface(path: Path | WeightsSource, dim, range_, resolution, norm, keep_1d, seed, split, batch_size, batch_seed, trajectory,
             engine, out, plot) -> None:
    if isinstance(path, WeightsSource):  # a weights file with --model/--data or --config
        run, weights = None, path
        objective = Objective(weights.models[0], weights.loss_fn, weights.dataset)
        out_dir, prefix = weights.weights[0].parent, f"{weights.weights[0].stem}-"
    else:
        run = Run.open(path)
        module = load_model(path)
        objective = Objective(module, run.loss_fn(), run.dataset())
        out_dir, prefix = run.path, ""
    check_split(objective, split, batch_size)
    paths = []
    if trajectory:
        steps, snaps = run.snapshots()
        if snaps.numel() == 0:
            raise UsageError(f"{run.path}: the run saved no parameter snapshots; train with snapshots enabled")
        directions = pca_directions(objective, snaps, center=objective.flat_params(), ignore_1d=not keep_1d)
        paths = [project(snaps, directions, label=run.name, steps=steps)]
        grid_range = tuple(range_) if range_ is not None else covering_range(paths)
    else:
        grid_range = tuple(range_) if range_ is not None else (-1.0, 1.0)
        directions = random_directions(objective, dim=dim, norm=norm, ignore_1d=not keep_1d, seed=seed)
    out_path = Path(out) if out else _default_out(out_dir, dim, norm, seed, split, batch_size, trajectory,
                                                  prefix)
    if out is None:
        where = "in the run directory" if run is not None else "beside the weights file"
        check_writable(out_path, label=f"the default --out ({where}; choose another with --out)", kind="file")
    surf = compute_surface(objective, directions, range=grid_range, resolution=resolution, split=split,
                           batch_size=batch_size, batch_seed=batch_seed, out=out_path, engine=engine)

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return
    centre = objective.evaluate(split=split) if batch_size is None else None
    where = (f"loss at the centre {centre.loss:.5g}, accuracy {centre.accuracy:.4g}" if centre is not None
             else "loss at the grid point nearest the centre {:.5g}".format(surf.value_at(*[0.0] * dim)[0]))
    click.echo(f"{out_path}: {surf.done.sum()}/{surf.done.size} points ({surf.work.forward_passes} computed "
               f"now, {surf.seconds:.1f} s, {surf.engine} engine); {where}")
    for tr in paths:
        click.echo(f"trajectory {tr.label}: {len(tr.coordinates)} snapshots, explained variance "
                   f"{sum(directions.explained_variance_ratio):.3f}, mean residual {tr.mean_residual_fraction:.3f}")
    if plot:
        stem = out_path.with_suffix("")
        written = []
        if dim == 2:
            written += contour_plot(surf, paths, path=stem.with_name(stem.name + "-contour")).paths
            written += surface_3d_plot(surf, path=stem.with_name(stem.name + "-3d")).paths
        else:
            written += curve_plot(surf, path=stem).paths
        click.echo("wrote " + ", ".join(str(p) for p in written))
