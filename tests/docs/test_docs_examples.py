"""Every ```python block of the README and docs/ runs, and what it prints is compared.

The convention, for whoever writes a page
-----------------------------------------
* The ```python blocks of one page run in order as ONE script (like a notebook: a later block
  uses the names of earlier ones), in a fresh interpreter, in a temporary directory (figures and
  run folders land there).  MNIST and Fashion-MNIST are read from ``$TOPOGRAPH_DATA_DIR`` or the
  ``shared/data`` folder beside the repository.
* A ```python block that is followed directly (blank lines only in between) by an ```output
  block must print exactly that output: the block's stdout is compared with the output block as
  :mod:`doctest` compares an example's output, with ``ELLIPSIS`` (``...`` matches any text, e.g.
  a time or a path) and ``NORMALIZE_WHITESPACE``.  Print numbers rounded (``round(x, 4)``,
  ``f"{x:.3f}"``) so that they do not depend on the machine; seed every random draw.
* A ```python block without an ```output block is only required to run (exit code 0) — for
  examples whose output is not deterministic (timings) or that print nothing.

So a page reads::

    ```python
    print(round(surface.loss[2, 2], 4))
    ```

    ```output
    2.3029
    ```

``test_convention_*`` below check the convention itself on small synthetic pages.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: a python block, and the output block right after it if there is one
BLOCK = re.compile(r"```python\n(.*?)```(?:[ \t]*\n(?:[ \t]*\n)*```output\n(.*?)```)?", re.S)
#: printed before each block so that the script's stdout splits into the blocks' outputs
MARKER = "\x1e topograph-docs block {} \x1e"
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def page_blocks(text: str) -> list[tuple[str, str | None]]:
    """(code, expected output or None) of every ```python block of a page, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def page_script(blocks: list[tuple[str, str | None]]) -> str:
    """One script that runs the blocks in order, printing a marker line before each."""
    parts = [f"print({MARKER.format(i)!r}, flush=True)\n{code}" for i, (code, _) in enumerate(blocks)]
    return "\n".join(parts)


def block_outputs(stdout: str, n: int) -> list[str]:
    """The stdout of each of the n blocks, split at the markers."""
    outputs = [""] * n
    pieces = re.split("^" + re.escape(MARKER.format("@@")).replace("@@", r"(\d+)") + r"\n", stdout, flags=re.M)
    for i in range(1, len(pieces) - 1, 2):
        outputs[int(pieces[i])] = pieces[i + 1]
    return outputs


def output_mismatches(blocks: list[tuple[str, str | None]], stdout: str) -> list[str]:
    """A report for every block whose printed output differs from its ```output block."""
    checker = doctest.OutputChecker()
    problems = []
    for i, ((code, want), got) in enumerate(zip(blocks, block_outputs(stdout, len(blocks)))):
        if want is not None and not checker.check_output(want, got, OPTIONS):
            first = code.strip().splitlines()[0] if code.strip() else ""
            diff = checker.output_difference(doctest.Example(code, want), got, OPTIONS)
            problems.append(f"block {i + 1} (starting {first!r}):\n{diff}")
    return problems


def run_script(script: str, directory: Path, name: str = "examples.py") -> subprocess.CompletedProcess:
    path = directory / name
    path.write_text(script, encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    data = os.environ.get("TOPOGRAPH_DATA_DIR")
    shared = ROOT.parent / "shared" / "data"
    if data:
        env["TOPOGRAPH_DATA_DIR"] = str(Path(data).resolve())
    elif shared.is_dir():
        env["TOPOGRAPH_DATA_DIR"] = str(shared)
    return subprocess.run([sys.executable, path.name], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=600)


#: pages whose examples take more than a few seconds (they train runs, map ResNets, search paths)
SLOW_PAGES = {"README.md", "maps.md", "curvature.md", "paths.md", "optimizers.md", "studies.md"}


def _pages_with_code() -> list:
    return [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW_PAGES else [])
            for p in PAGES if BLOCK.search(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", _pages_with_code())
def test_page_examples_run_and_print_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    blocks = page_blocks(page.read_text(encoding="utf-8"))
    result = run_script(page_script(blocks), tmp_path, f"{page.stem}_examples.py")
    assert result.returncode == 0, f"{page.name} examples failed:\n{result.stderr[-3000:]}"
    problems = output_mismatches(blocks, result.stdout)
    assert not problems, f"{page.name}: printed output differs from the page\n" + "\n".join(problems)


# ---------------------------------------------------------------------- the convention itself
SYNTHETIC = """
Text.

```python
x = 6 * 7
print(x)
```

```output
42
```

```python
print("no output block: only run")
```

```python
print(f"{x / 7:.2f}", "took 0.123 s")
```

```output
6.00 took ... s
```
"""


def test_convention_pairs_each_block_with_the_output_block_right_after_it() -> None:
    blocks = page_blocks(SYNTHETIC)
    assert [want for _, want in blocks] == ["42\n", None, "6.00 took ... s\n"]
    assert blocks[0][0] == "x = 6 * 7\nprint(x)\n"


def test_convention_accepts_matching_output_and_reports_a_difference(tmp_path: Path) -> None:
    blocks = page_blocks(SYNTHETIC)
    result = run_script(page_script(blocks), tmp_path)
    assert result.returncode == 0, result.stderr
    assert block_outputs(result.stdout, 3)[1] == "no output block: only run\n"
    assert output_mismatches(blocks, result.stdout) == []

    wrong = page_blocks(SYNTHETIC.replace("```output\n42\n```", "```output\n43\n```"))
    result = run_script(page_script(wrong), tmp_path)
    problems = output_mismatches(wrong, result.stdout)
    assert len(problems) == 1 and "block 1" in problems[0] and "43" in problems[0] and "42" in problems[0]
