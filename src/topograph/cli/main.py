"""The ``topograph`` command.

Built on click (a mature, well-documented CLI library: typed options, help pages, and exit code
2 for usage errors out of the box).  Sub-commands live one per module in ``topograph.cli`` and
are imported lazily, so ``topograph --help`` stays fast and one broken feature cannot take the
others down.  Every :class:`topograph.errors.UsageError` raised anywhere below becomes one line
on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from topograph.errors import UsageError

# command name -> module in topograph.cli that defines a click command called `command`
COMMANDS: dict[str, str] = {
    "quickstart": "topograph.cli.quickstart",
    "train": "topograph.cli.train",
    "surface": "topograph.cli.surface",
    "curvature": "topograph.cli.curvature",
    "paths": "topograph.cli.paths",
    "demo": "topograph.cli.demo",
    "study": "topograph.cli.study",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, m in COMMANDS.items() if importlib.util.find_spec(m) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None or importlib.util.find_spec(module) is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="topograph")
def cli() -> None:
    """Map, measure and navigate neural-network loss landscapes."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user mistakes into one line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="topograph", standalone_mode=False)
    except UsageError as err:
        click.echo(f"topograph: error: {err}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("topograph: aborted", err=True)
        return 130
    except click.ClickException as err:  # click's own usage errors: exit code 2
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    return 0


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
