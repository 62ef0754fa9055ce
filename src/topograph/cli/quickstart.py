"""``topograph quickstart``: train SGD, SGD + momentum and Adam on digits, then map, measure
and connect their solutions.

Needs no download; finishes in well under 2 minutes on 2 CPU cores.  Everything goes to
``--out`` (default ``./topograph-runs/quickstart``); running it again reuses what is there.
"""

from __future__ import annotations

import click

from topograph.cli.checks import check_writable
from topograph.cli.console import make_console
from topograph.quickstart import analysis_table, earlier_results, run


@click.command("quickstart")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              default="topograph-runs/quickstart", show_default=True,
              help="Folder for the quickstart's run directories and figures.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--train-only", is_flag=True, help="Stop after training (no map, curvature, paths).")
def command(out_dir: str, quiet: bool, train_only: bool) -> None:
    """Train SGD, SGD+momentum and Adam on digits; map, measure and connect their solutions."""

    check_writable(out_dir, label="--out")
    console = make_console()
    reused = earlier_results(out_dir)
    if reused:
        console.print(f"quickstart: reusing {reused} in {out_dir} (delete that folder to start over)",
                      highlight=False, soft_wrap=True)
    report = run(out_dir, progress=not quiet, analyses=not train_only)
    console.print(report.training.table())
    if not train_only:
        console.print(analysis_table(report))
        straight, found = report.barrier["straight"], report.barrier.get("fourier", {})
        console.print(
            f"barrier SGD → Adam (train loss): straight line H = {straight['H']:.4f} "
            f"(ΔH = {straight['dH']:.4f}); FourierPathFinder H = {found.get('H', float('nan')):.4f} "
            f"(ΔH = {found.get('dH', float('nan')):.4f})")
        for fig in report.figures:
            console.print(f"figure: {fig}")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    console.print(f"run directories: {report.training.out_dir}   ({timing})")
