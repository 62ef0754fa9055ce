"""The package's shape, checked: layers that point down, no import cycles, no import hidden in a
function body, modules and functions a reader can hold in their head.

The layers (pyproject.toml, ``[tool.importlinter]``; drawn in docs/design.md) run from the command
line down to the core: cli → quickstart → studies → report → runs → landscape | curvature | paths
| optim (siblings that do not import each other) → data | models → core → io → errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "topograph"
#: modules allowed over MAX_MODULE_LINES, with the reason (docs/design.md lists them too)
LONG_MODULES: dict[str, str] = {}
#: functions allowed over MAX_FUNCTION_LINES (``module:qualified name``), with the reason
LONG_FUNCTIONS: dict[str, str] = {}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_layers_point_down(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, "import-linter contracts broken (run lint-imports):\n" + capsys.readouterr().out[-3000:]


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("topograph")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:10])


def test_no_topograph_import_inside_a_function() -> None:
    hidden = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("topograph"):
                        hidden.append(f"{path.relative_to(ROOT)}:{sub.lineno} {sub.module}")
                    elif isinstance(sub, ast.Import) and any(a.name.startswith("topograph") for a in sub.names):
                        hidden.append(f"{path.relative_to(ROOT)}:{sub.lineno}")
    assert not hidden, "imports of topograph modules inside functions:\n" + "\n".join(hidden)


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = [], []
    for path in _modules():
        rel = str(path.relative_to(SRC))
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES and rel not in LONG_MODULES:
            long_modules.append(f"{rel} ({len(text.splitlines())} lines)")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{rel}:{getattr(node, 'name', '')}.{child.name}".replace(":.", ":")
                    first = child.body[0]
                    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
                        start = first.end_lineno + 1  # the body after the docstring
                    else:
                        start = first.lineno
                    length = child.end_lineno - start + 1
                    if length > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                        long_functions.append(f"{name} ({length} lines)")
    assert not long_modules and not long_functions, (
        f"over {MAX_MODULE_LINES} lines: {long_modules}; functions over {MAX_FUNCTION_LINES} lines: {long_functions}")


@pytest.mark.parametrize("allowed", [LONG_MODULES, LONG_FUNCTIONS])
def test_every_exception_is_explained(allowed: dict[str, str]) -> None:
    assert all(reason.strip() for reason in allowed.values())
