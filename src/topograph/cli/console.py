"""The rich console every sub-command prints through."""

from __future__ import annotations

from rich.console import Console


def make_console(width: int = 120) -> Console:
    """A terminal-sized console, or a ``width``-column one when output goes to a file or pipe
    (rich would otherwise assume 80 columns and truncate the result tables in logs)."""
    console = Console()
    return console if console.is_terminal else Console(width=width)
