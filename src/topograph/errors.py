"""Errors that mean "the user asked for something invalid" or "a file is not what it should be".

A :class:`UsageError` carries one line that names the argument, file or key, says what is
wrong and what is allowed.  The CLI prints it without a traceback and exits with code 2; the
library raises it as an ordinary :class:`ValueError` subclass, so ``except ValueError`` works.

A :class:`DamagedFileError` is the usage error of a file that is damaged (truncated, empty,
random bytes), foreign (a pickle naming a forbidden global, another architecture's weights) or
does not match the run it sits in.  It keeps the file, the problem and the remedy apart, so a
caller that knows better (the trainer resuming a run) can give another remedy for the same file.
"""

from __future__ import annotations

import os


class UsageError(ValueError):
    """Bad input from the user: one clear line, no traceback in the CLI (exit code 2)."""


class DamagedFileError(UsageError):
    """``PATH: problem; remedy`` — a file that cannot be used as it is, and what to do about it."""

    def __init__(self, path: str | os.PathLike, problem: str, remedy: str) -> None:
        self.path = path
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{path}: {problem}; {remedy}")

    def with_remedy(self, remedy: str) -> DamagedFileError:
        """The same file and problem with another remedy."""
        return DamagedFileError(self.path, self.problem, remedy)


__all__ = ["DamagedFileError", "UsageError"]
