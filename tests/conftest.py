"""Fixtures shared by the whole suite.

The folders under ``tests/`` mirror the packages of ``src/topograph``; plain helpers (tiny models
and data, dense references) are in ``tests/helpers.py``.  Tests that take more than a few
seconds carry ``@pytest.mark.slow``: ``python -m pytest -m "not slow"`` runs the rest (the quick
loop while developing), ``python -m pytest`` runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import data_root


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data folder (``TOPOGRAPH_DATA_DIR`` set to it for the test); skips when there is none."""
    root = data_root()
    if root is None:
        pytest.skip("no data folder: set TOPOGRAPH_DATA_DIR or put ../shared/data beside the repository")
    monkeypatch.setenv("TOPOGRAPH_DATA_DIR", str(root))
    return root
