"""Command-line interface: one module per sub-command, wired up in :mod:`topograph.cli.main`."""
