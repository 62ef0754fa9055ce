"""``topograph train CONFIG.toml [--set TABLE.KEY=VALUE ...] [--out DIR]``.

Trains every seed of the config (one run directory each, ``OUT/NAME/seed-S``), resuming runs
that were interrupted and skipping finished ones, then prints a table of the results and the
run directories.  The
config reference is ``docs/runs.md``; a mistake in the file or in ``--set`` is one line and
exit code 2.
"""

from __future__ import annotations

import click

from topograph.cli.checks import check_writable
from topograph.cli.console import make_console
from topograph.runs.config import load_config
from topograph.runs.report import results_table
from topograph.runs.trainer import train_all


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=str))
@click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE",
              help="Override a config value (a TOML value, e.g. --set optimizer.lr=0.01 "
                   "--set run.seeds=[0,1]). Repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Parent folder of the run directories (default: run.out_dir of the config).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(config: str, overrides: tuple[str, ...], out_dir: str | None, quiet: bool) -> None:
    """Train the runs of CONFIG.toml (resumable; finished runs are not redone)."""

    cfg = load_config(config, overrides)
    check_writable(out_dir if out_dir is not None else cfg.run.out_dir,
                   label="--out" if out_dir is not None else f"{config}: run.out_dir")
    runs = train_all(cfg, out_dir, progress=not quiet)
    console = make_console()
    console.print(results_table(runs, title=f"{cfg.run.name}: {len(runs)} run(s)"))
    for run in runs:
        console.print(f"run directory: {run.path}", highlight=False, soft_wrap=True)
