"""``topograph curvature RUN_DIR_OR_CHECKPOINT``: Hessian eigenvalues, trace, density and
sharpness of a trained model, as a table, JSON and plots (a thin layer over
:mod:`topograph.curvature`).  ``topograph curvature --model M --weights FILE --data D`` (or
``--config``) does the same for a plain weights file (:mod:`topograph.cli.sources`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
from rich.table import Table
from torch import Tensor

from topograph.cli.checks import check_split, check_writable
from topograph.cli.console import make_console
from topograph.cli.sources import SourceOptions, source_options, weights_source
from topograph.core import Objective, ParamSpec
from topograph.curvature import (
    HessianOperator,
    estimate_trace,
    lanczos,
    layer_curvature,
    measures_along_trajectory,
    negative_curvature_from_density,
    plot_along,
    plot_density,
    spectral_density,
)
from topograph.curvature.measures import epsilon_sharpness
from topograph.errors import UsageError
from topograph.io import atomic_write_text
from topograph.runs import Run, load_model


def _atomic_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=float))


@click.command("curvature", epilog="""\b
Examples:
  topograph curvature runs/adam/seed-0 --density
  topograph curvature --model mypkg.nets:resnet20 --weights my.pt --data mnist --limit-train 1000
  topograph curvature --config model-and-data.toml --weights my.pt --top-k 5

A weights file is a state_dict saved with torch.save (loaded with weights_only=True); its
model and data come from --model/--data or from --config, never from a run directory.""")
@click.argument("path", metavar="[RUN_DIR_OR_CHECKPOINT]", type=click.Path(path_type=Path), required=False)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="data split the loss is averaged over")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="use only the first N samples of the split, at most its size (default: all, in chunks)")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="number of top eigenvalues (Lanczos), at most the number of parameters")
@click.option("--trace-probes", type=click.IntRange(min=3), default=50, show_default=True,
              help="Hessian-vector products for the trace (Hutchinson)")
@click.option("--density", is_flag=True, help="eigenvalue spectral density (SLQ) and its plot")
@click.option("--per-layer", is_flag=True, help="top eigenvalue and trace of each layer's block")
@click.option("--along-trajectory", is_flag=True, help="measures at every snapshot of the run")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="output directory (default: <run>/curvature, or <weights>-curvature beside --weights)")
@source_options
def command(path: Path | None, split: str, batch_size: int | None, top_k: int, trace_probes: int,
            density: bool, per_layer: bool, along_trajectory: bool, seed: int,
            out: Path | None, sources: SourceOptions) -> None:
    """Curvature of the loss at a saved run's final weights or at a checkpoint, or at the
    weights file of --weights with --model/--data or --config."""
    if path is None and not sources.given():
        raise UsageError("give a run directory (or a checkpoint inside one), or --weights FILE with --model "
                         "and --data (see `topograph curvature --help`)")
    if path is not None and not path.exists():
        raise UsageError(f"PATH {str(path)!r} does not exist; give a run directory or a checkpoint file")
    if along_trajectory and path is None:
        raise UsageError("--along-trajectory needs a run directory (its snapshots); a weights file has no "
                         "trajectory")
    if out is not None:
        check_writable(out, label="--out")
    run, objective, theta, path = _where(path, sources)
    batch = _batch(objective, split, batch_size)
    out = Path(out) if out is not None else _default_out(run, path)
    op = HessianOperator(objective, theta, split=split, batch=batch)
    if top_k > op.size:
        raise UsageError(f"--top-k {top_k}: the model has only {op.size} parameters, so the Hessian has "
                         f"{op.size} eigenvalues; give at most {op.size}")
    out.mkdir(parents=True, exist_ok=True)
    eig = lanczos(op, k=top_k, which="LA", tol=1e-3, seed=seed)
    tr = estimate_trace(op, probes=trace_probes, method="auto", seed=seed)  # exact when supported
    sharp = epsilon_sharpness(objective, theta, split=split, batch=batch, seed=seed)
    report: dict = {
        "path": str(path), "split": split, "samples": batch_size or objective.num_samples(split),
        "parameters": op.size, "loss": sharp.loss,
        "top_k": top_k, "top_eigenvalues": [float(v) for v in eig.eigenvalues],
        "trace": tr.estimate, "trace_std_error": tr.std_error,
        "epsilon_sharpness": sharp.value, "epsilon": sharp.epsilon,
    }
    files = []
    if density:
        files += _density(op, report, out, seed)
    if per_layer:
        report["layers"] = [lc.as_dict() for lc in layer_curvature(
            objective, theta, split=split, batch=batch, k=1, trace_probes=trace_probes, seed=seed)]
    if along_trajectory:
        along = measures_along_trajectory(run, objective=objective, split=split, batch=batch,
                                          trace_probes=trace_probes, seed=seed, density_steps=None)
        report["along_trajectory"] = along.as_dict()
        files += plot_along(along, out / "along_trajectory")
    report["hvps"] = op.hvps
    _atomic_json(out / "curvature.json", report)
    _print(report, path, top_k, files, out)


def _where(path: Path | None, sources: SourceOptions) -> tuple[Run | None, Objective, Tensor | None, Path]:
    """The run (if any), the objective, the point (None: the model's own weights) and the file
    or directory measured."""
    weights = weights_source(sources, [str(path)] if path is not None else [], count=1, command="curvature")
    if weights is not None:  # a weights file with --model/--data or --config
        return None, Objective(weights.models[0], weights.loss_fn, weights.dataset), None, weights.weights[0]
    run = Run.open(path)
    theta = None
    if path.is_file():  # a checkpoint: evaluate at its weights
        model = load_model(path)
        theta = ParamSpec.from_module(model).flatten(dict(model.named_parameters())).detach()
    return run, run.objective(), theta, path


def _batch(objective: Objective, split: str, batch_size: int | None) -> tuple[Tensor, Tensor] | None:
    """The first ``batch_size`` samples of ``split`` (None: the whole split)."""
    check_split(objective, split, batch_size)
    if batch_size is None:
        return None
    xs, ys = objective.splits[split]
    return xs[:batch_size], ys[:batch_size]


def _default_out(run: Run | None, path: Path) -> Path:
    if run is None:
        out = path.parent / f"{path.stem}-curvature"
        check_writable(out, label="the default --out (beside the weights file; choose another with --out)")
    else:
        out = Path(run.path) / "curvature"
        check_writable(out, label="the default --out (in the run directory; choose another with --out)")
    return out


def _density(op: HessianOperator, report: dict, out: Path, seed: int) -> list[Path]:
    """The spectral density (SLQ) into ``report``; its plot's files."""
    dens = spectral_density(op, steps=80, runs=3, seed=seed)
    nc = negative_curvature_from_density(dens)
    report["density"] = {"sigma": dens.sigma, "nodes": dens.nodes.tolist(), "weights": dens.weights.tolist()}
    report.update(negative_fraction=nc.negative_fraction, lambda_min=nc.lambda_min, saddle_ratio=nc.ratio)
    return plot_density(dens, out / "density")


def _print(report: dict, path: Path, top_k: int, files: list[Path], out: Path) -> None:
    table = Table(title=f"Hessian of the {report['split']} loss at {path}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("loss", f"{report['loss']:.5g}")
    for i, v in enumerate(report["top_eigenvalues"]):
        table.add_row(f"λ_{i + 1}", f"{v:.5g}")
    table.add_row("trace", f"{report['trace']:.5g} ± {report['trace_std_error']:.2g}")
    table.add_row(f"ε-sharpness (ε={report['epsilon']:g}, %)", f"{report['epsilon_sharpness']:.4g}")
    if "density" in report:
        table.add_row("negative eigenvalue fraction", f"{report['negative_fraction']:.3g}")
        table.add_row("λ_min (Ritz)", f"{report['lambda_min']:.4g}")
    console = make_console()
    console.print(table)
    if "layers" in report:
        lt = Table(title="per layer")
        for col in ("layer", "size", "λ_max", "trace"):
            lt.add_column(col, justify="right" if col != "layer" else "left")
        for lc in report["layers"]:
            lt.add_row(lc["name"], str(lc["size"]), f"{lc['top_eigenvalues'][0]:.5g}",
                       f"{lc['trace']:.5g}" if not math.isnan(lc["trace"]) else "-")
        console.print(lt)
    if len(report["top_eigenvalues"]) < top_k:
        console.print(f"note: Lanczos found {len(report['top_eigenvalues'])} of the {top_k} eigenvalues asked "
                      "for: the Krylov space of its start vector closes there (the Hessian has no more "
                      "distinct eigenvalues it can reach); curvature.json holds all of them",
                      highlight=False, soft_wrap=True)
    console.print(f"wrote {out / 'curvature.json'}" + "".join(f", {f.name}" for f in files))
