"""``topograph demo``: optimizers on the analytic landscapes (trajectories, basins, SGDR).

    topograph demo [--landscape NAME ...] [--out DIR] [--quick]

For each landscape (default: rastrigin, himmelblau, tilted-double-well, muller-brown) it writes
``trajectories_<name>.png/.svg`` (GD, momentum, Adam, Rolling Ball at three radii, Guided
Exploration on SGD and quasi-Newton from one start), ``basins_<name>.png/.svg`` (which minimum
each optimizer reaches from a grid of starts) and, for all of them, ``basin_fractions.csv``;
with the tilted double well also ``sgdr_tilted-double-well.png/.svg`` (warm restarts against
constant learning rates, from the shallow minimum).  See :mod:`topograph.optim.demos`.

The full demo takes minutes (about 6 on 2 CPU cores); on a terminal it shows progress bars,
elsewhere (a log, a pipe) one line on stderr per finished part.
"""

from __future__ import annotations

import sys
import time

import click

from topograph.cli.checks import check_writable
from topograph.data.analytic import get_landscape
from topograph.optim.demo_report import run_demo
from topograph.optim.demos import DEMO_LANDSCAPES


@click.command("demo")
@click.option("--landscape", "landscapes", multiple=True, metavar="NAME",
              help="Landscape(s) to run (repeatable); default: rastrigin, himmelblau, tilted-double-well, "
                   "muller-brown.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="demo-out", show_default=True,
              help="Output directory.")
@click.option("--quick", is_flag=True, help="Coarser grids and half the steps.")
def command(landscapes, out, quick):
    """Optimizers on analytic landscapes: trajectories, basin-of-attraction maps, SGDR escape.

    The full demo takes about 6 minutes on 2 CPU cores (--quick and fewer --landscape take
    less). Progress: bars on a terminal, else one line on stderr per finished part.
    """

    names = list(landscapes) or list(DEMO_LANDSCAPES)
    for name in names:
        get_landscape(name)  # a one-line UsageError for an unknown name, before any work
    check_writable(out, label="--out")
    on_tty = sys.stderr.isatty()
    t0 = time.perf_counter()

    def part_done(label: str, done: int, total: int) -> None:
        click.echo(f"demo: {label} done ({done}/{total}, {time.perf_counter() - t0:.0f} s)", err=True)

    report = run_demo(names, out_dir=out, quick=quick, progress=on_tty, on_part=None if on_tty else part_done)
    click.echo(f"{'landscape':<20} {'optimizer':<14} {'starts':>6}  fractions of starts per minimum")
    by_key: dict[tuple[str, str], list[dict]] = {}
    for row in report.rows:
        by_key.setdefault((row["landscape"], row["optimizer"]), []).append(row)
    for (ls, opt), rows in by_key.items():
        parts = ", ".join(f"{r['minimum']} {r['fraction']:.2f}" for r in rows if r["fraction"] > 0)
        click.echo(f"{ls:<20} {opt:<14} {rows[0]['starts']:>6}  {parts}")
    if report.sgdr is not None:
        click.echo("\nSGDR from the shallow minimum of the tilted double well "
                   f"({report.sgdr.seeds} noise seeds): fraction ending in the deep basin, mean final f")
        for label, frac in report.sgdr.global_fraction.items():
            click.echo(f"  {label:<28} {frac:5.2f}   {report.sgdr.final_loss[label]:+.4f}")
    click.echo(f"\nwrote {len(report.files)} files to {out}/")
