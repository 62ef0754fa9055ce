"""Moved to :mod:`topograph.io` (shared by every layer); kept while imports are updated."""

from topograph.io import *  # noqa: F401,F403
from topograph.io import atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text, safe_torch_load  # noqa: F401
