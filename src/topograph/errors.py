"""Errors that mean "the user asked for something invalid".

A :class:`UsageError` carries one line that names the argument, file or key, says what is
wrong and what is allowed.  The CLI prints it without a traceback and exits with code 2; the
library raises it as an ordinary :class:`ValueError` subclass, so ``except ValueError`` works.
"""


class UsageError(ValueError):
    """Bad input from the user: one clear line, no traceback in the CLI (exit code 2)."""
