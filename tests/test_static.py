"""The static checks CI runs with the suite: ruff, mypy --strict, and the layers of DESIGN.md.

The layers are import-linter contracts in ``pyproject.toml`` (``[tool.importlinter]``); run them by hand
with ``.venv/bin/lint-imports``. The tools run from the venv of the interpreter running the tests, on
this checkout, and write no cache.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

needs_import_linter = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="import-linter (the test extra installs it) needs Python 3.11"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # This checkout first, as the README's `pip install -e` would have it.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@needs_import_linter
def test_the_layers_hold() -> None:
    result = _run(str(BIN / "lint-imports"), "--no-cache", "--no-logo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout, result.stdout


def _eager_import_lines(tree: ast.Module) -> set[int]:
    """Lines of the imports that run when the module is imported (not inside a function)."""
    lines: set[int] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                lines.add(child.lineno)
            pending.append(child)
    return lines


@needs_import_linter
def test_the_upward_imports_the_layers_allow_are_inside_functions() -> None:
    """The layers contract ignores a few upward imports (accessors such as ``run.gallery()``); each is
    allowed only as a lazy import inside a function, so the lower layer still imports without the upper."""
    import grimp
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    graph = grimp.build_graph("sora_nb", cache_dir=None)
    for expression in layers["ignore_imports"]:
        importer, imported = (part.strip() for part in expression.split("->"))
        details = graph.get_import_details(importer=importer, imported=imported)
        assert details, f"{expression}: no such import any more; drop it from ignore_imports"
        spec = importlib.util.find_spec(importer)
        assert spec is not None and spec.origin is not None
        eager = _eager_import_lines(ast.parse(Path(spec.origin).read_text(encoding="utf-8")))
        at_import_time = [f"{spec.origin}:{d['line_number']}" for d in details if d["line_number"] in eager]
        assert not at_import_time, f"{expression} is allowed only inside a function: {at_import_time}"


def test_ruff_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "--no-cache", "sora_nb", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    # os.devnull as the cache directory: mypy writes no cache (a cold run, a few seconds).
    result = _run(sys.executable, "-m", "mypy", "--cache-dir", os.devnull)
    assert result.returncode == 0, result.stdout + result.stderr
