"""Fixtures shared by the whole suite.

The folders under ``tests/`` mirror the packages of ``src/topograph``; plain helpers (tiny models
and data, dense references) are in ``tests/helpers.py``; fixtures used by one folder only are in
that folder's ``conftest.py``.  Tests that take more than a few seconds carry
``@pytest.mark.slow``: ``python -m pytest -m "not slow"`` runs the rest (the quick loop while
developing), ``python -m pytest`` runs everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import PostgresServer, data_root, postgres_bin


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data folder (``TOPOGRAPH_DATA_DIR`` set to it for the test); skips when there is none."""
    root = data_root()
    if root is None:
        pytest.skip("no data folder: set TOPOGRAPH_DATA_DIR or put ../shared/data beside the repository")
    monkeypatch.setenv("TOPOGRAPH_DATA_DIR", str(root))
    return root


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test (restored after): on tiny models thread hand-offs would
    dominate every product on a loaded machine.  Use it module-wide with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a PostgreSQL server started for the test (stopped and removed after).

    Skipped, with the reason, where the server programs or the Python driver are missing; under
    CI (``CI=true``, where ``.ci/run`` installs both) a missing one fails instead."""
    bindir = postgres_bin()
    reason = None
    if bindir is None:
        reason = "PostgreSQL server programs not found (apt-get install postgresql)"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            reason = "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": .ci/run installs it")
        pytest.skip(reason)
    server = PostgresServer(bindir).start()
    try:
        yield server.url
    finally:
        server.stop()
