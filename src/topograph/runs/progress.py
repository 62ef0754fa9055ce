"""The runs' progress display: one rich bar per run, epochs done, elapsed time and the latest
test accuracy and loss; none off a terminal when the caller says so."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class _LazyProgress(Progress):
    """A rich display that starts with its first bar, so an error raised before any run starts
    is not preceded by the empty display (a blank line)."""

    def add_task(self, *args: Any, **kwargs: Any):
        if not self.live.is_started:
            self.start()
        return super().add_task(*args, **kwargs)


@contextlib.contextmanager
def progress_bar(enabled: bool):
    """Rich progress bars for the runs (none when not ``enabled``)."""
    if not enabled:
        yield None
        return
    progress = _LazyProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("epochs"), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                             transient=False)
    try:
        yield progress
    finally:
        if progress.live.is_started:  # (stop() prints a newline off a terminal even when never started)
            progress.stop()


__all__ = ["progress_bar"]
