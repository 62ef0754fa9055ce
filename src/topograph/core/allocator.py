"""Keeping freed activation memory in the process: glibc's thresholds for conv nets on a CPU.

A conv net's forward pass over a chunk of images allocates activation buffers of several MB and
frees them at the end of the chunk.  glibc's ``malloc`` serves such sizes with fresh ``mmap``s
and returns them to the operating system when they are freed (its mmap and trim thresholds adapt
only up to 32 MB), so every chunk of every point pays the page faults of touching new memory
again.  :func:`keep_freed_memory` raises both thresholds (``mallopt``), so freed buffers stay in
the process and the next chunk reuses them.  ``benchmarks/surface.py`` measures the effect on
the conv workloads (page faults, system time and seconds, with and without).

The setting is process-wide: the process keeps up to the threshold of freed memory instead of
returning it.  :class:`~topograph.core.Objective` applies it the first time it evaluates a conv
net on the CPU under Linux with glibc; set the environment variable ``TOPOGRAPH_MALLOC=system``
to leave the allocator as it is.  The same effect for any program: ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` in the environment before it starts.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: bytes: buffers up to this size are served from (and freed back to) the process's heap
KEEP_BYTES = 256 * 2**20
#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_applied = False


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds to ``limit`` bytes, once per process; returns
    whether the setting is in force (``False`` off glibc or with ``TOPOGRAPH_MALLOC=system``)."""
    global _applied
    if _applied:
        return True
    if os.environ.get("TOPOGRAPH_MALLOC", "").lower() == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(limit))) and bool(libc.mallopt(_M_TRIM_THRESHOLD, int(limit)))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    _applied = ok
    return ok


__all__ = ["KEEP_BYTES", "keep_freed_memory"]
