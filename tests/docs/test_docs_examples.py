"""Every ```python block of the README and docs/ runs: each file's blocks in order, as one script.

Blocks of one page build on each other (like a notebook), so they run concatenated in a fresh
interpreter, in a temporary directory (figures and run folders land there).  Fashion-MNIST is
read from ``$TOPOGRAPH_DATA_DIR`` or the shared copy beside the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _pages_with_code() -> list[Path]:
    return [p for p in PAGES if BLOCK.search(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    code = "\n\n".join(m.group(1) for m in BLOCK.finditer(page.read_text(encoding="utf-8")))
    script = tmp_path / f"{page.stem}_examples.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg")
    data = os.environ.get("TOPOGRAPH_DATA_DIR")
    shared = ROOT.parent / "shared" / "data"
    if data:
        env["TOPOGRAPH_DATA_DIR"] = str(Path(data).resolve())
    elif shared.is_dir():
        env["TOPOGRAPH_DATA_DIR"] = str(shared)
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{page.name} examples failed:\n{result.stderr[-3000:]}"
