"""``topograph study NAME``: run (or resume) a shipped study and write its HTML report.

Studies need the ``studies`` extra (Optuna for tuning, plotly for the report's figures):
``pip install 'topograph[studies]'``; without it the command says so in one line.
"""

from __future__ import annotations

import click
from rich.table import Table

from topograph.cli.checks import check_writable
from topograph.cli.console import make_console
from topograph.errors import UsageError
from topograph.studies.runner import list_studies, run_study


@click.command("study")
@click.argument("name", required=False)
@click.option("--list", "list_", is_flag=True, help="List the studies with their estimated cost.")
@click.option("--quick", is_flag=True, help="The --quick variant (minutes; a smoke test, not evidence).")
@click.option("--out", "out", type=click.Path(file_okay=False), default="topograph-studies", show_default=True,
              help="Parent folder; the study goes to OUT/NAME/{default,quick}.")
@click.option("--storage", default=None,
              help="Optuna RDB storage URL (SQLAlchemy), e.g. postgresql://host/db, shared by several "
                   "processes/machines; default: a SQLite file in the study folder.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(name: str | None, list_: bool, quick: bool, out: str, storage: str | None, quiet: bool) -> None:
    """Run the study NAME (resumable) and write report.html and tables/*.csv.

    Needs the studies extra: pip install 'topograph[studies]'.
    """


    console = make_console(140)
    if list_:
        table = Table(title="topograph studies (estimated minutes on 2 CPU cores)")
        table.add_column("name", no_wrap=True)
        table.add_column("default (min)", no_wrap=True, justify="right")
        table.add_column("--quick (min)", no_wrap=True, justify="right")
        table.add_column("title")
        for s in list_studies():
            table.add_row(s["name"], f"{s['default_minutes']:g}", f"{s['quick_minutes']:g}", s["title"])
        console.print(table)
        return
    if not name:
        raise UsageError("study: give a study NAME (see `topograph study --list`)")
    check_writable(out, label="--out")
    result = run_study(name, quick=quick, out=out, storage=storage, progress=not quiet)
    console.print(f"report: {result.report}")
    console.print(f"tables: {result.study_dir / 'tables'}  ({result.seconds:.1f} s)")
