"""``topograph quickstart``: train SGD, SGD + momentum and Adam on digits and print the results.

Needs no download; finishes in well under a minute on 2 CPU cores.  Run directories go to
``--out`` (default ``./topograph-runs/quickstart``); running it again reuses finished runs.
"""

from __future__ import annotations

import click


@click.command("quickstart")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              default="topograph-runs/quickstart", show_default=True,
              help="Folder for the quickstart's run directories.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out_dir: str, quiet: bool) -> None:
    """Train SGD, SGD+momentum and Adam on digits; print a table of the results."""
    from rich.console import Console

    from topograph.runs.quickstart import run_quickstart

    result = run_quickstart(out_dir, progress=not quiet)
    console = Console()
    console.print(result.table())
    console.print(f"run directories: {result.out_dir}   ({result.seconds:.1f} s)")
