"""The ``topograph`` command.

Built on click (a mature, well-documented CLI library: typed options, help pages, and exit code
2 for usage errors out of the box).  Sub-commands live one per module in ``topograph.cli`` and
are imported lazily, so ``topograph --help`` stays fast and one broken feature cannot take the
others down.  Every :class:`topograph.errors.UsageError` raised anywhere below (a bad argument
or key, a damaged or foreign file), every click usage error (an option out of its range) and
every operating-system error on a named file becomes one line on stderr and exit code 2,
without a traceback — the same from the console script, ``main([...])`` and click's
``CliRunner``.
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

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's ``main``; standalone (the console script, ``CliRunner``) it exits with
        :func:`_outcome`'s code after printing at most one error line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(_outcome(lambda: super(LazyGroup, self).main(
            args, prog_name or "topograph", complete_var, standalone_mode=False, **extra)))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="topograph")
def cli() -> None:
    """Map, measure and navigate neural-network loss landscapes."""


def _error(message: str) -> int:
    click.echo(f"topograph: error: {' '.join(message.split())}", err=True)
    return 2


def _click_error(err: click.ClickException) -> int:
    """Click's usage errors (a bad option value, an unknown option, a missing argument) as the
    project's one line: the option, what is wrong with its value (the allowed range or choices)
    and where the help is."""
    ctx = getattr(err, "ctx", None)
    where = ctx.command_path if ctx is not None else "topograph"
    param = getattr(err, "param", None)
    if (isinstance(err, click.BadParameter) and not isinstance(err, click.MissingParameter)
            and param is not None and ctx is not None):
        hint = " / ".join(o for o in getattr(param, "opts", ()) if o.startswith("--")) or param.human_readable_name
        message = f"{hint}: {err.message}"
    else:
        message = err.format_message()
    message = message.rstrip(".")
    if isinstance(err, click.UsageError):
        return _error(f"{message} (see `{where} --help`)")
    return _error(message)  # pragma: no cover - other ClickExceptions (file errors)


def _outcome(invoke) -> int:
    """Run ``invoke()`` and turn the ways a command can fail on its input into exit codes:
    a :class:`UsageError` (bad argument, key, damaged file) or a click usage error is one line
    on stderr and exit code 2; an operating-system error on a named file (a folder that cannot
    be written, a full disk) is one line naming the file, exit code 2; Ctrl-C is exit code 130."""
    try:
        rv = invoke()
    except UsageError as err:
        return _error(str(err))
    except click.exceptions.Abort:
        click.echo("topograph: aborted", err=True)
        return 130
    except click.ClickException as err:
        return _click_error(err)
    except click.exceptions.Exit as err:
        return err.exit_code
    except OSError as err:
        if err.filename is None:
            raise
        return _error(f"{err.filename}: {err.strerror or type(err).__name__}; check the path, its "
                      "permissions and the free space")
    return rv if isinstance(rv, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user mistakes into one line and exit code 2."""
    return _outcome(lambda: cli.main(args=argv, prog_name="topograph", standalone_mode=False))


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
