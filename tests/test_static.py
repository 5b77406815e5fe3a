"""The static checks CI runs with the suite: ruff, mypy --strict, and the layers of DESIGN.md.

The layers are import-linter contracts in ``pyproject.toml`` (``[tool.importlinter]``); run them by hand
with ``.venv/bin/lint-imports``. The tools run from the venv of the interpreter running the tests, on
this checkout, and write no cache.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

needs_import_linter = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="import-linter (the test extra installs it) needs Python 3.11"
)


def _run(*args: str, package_root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # The package under ``package_root`` first (this checkout, as the README's `pip install -e` has it).
    path = os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(args, cwd=package_root, env=env, capture_output=True, text=True, timeout=300)


@needs_import_linter
def test_the_layers_hold() -> None:
    result = _run(str(BIN / "lint-imports"), "--no-cache", "--no-logo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout, result.stdout


@needs_import_linter
@pytest.mark.parametrize(("module", "line", "contract", "reported"), [
    # the engine reaching up to display and to the widgets
    ("_ledger.py", "from ._display import job_html", "layers", "sora_nb._ledger -> sora_nb._display"),
    ("_runner.py", "from .ui import gallery", "layers", "sora_nb._runner -> sora_nb.ui"),
    # display is HTML only: the widget a job shows as is chosen in ui (it was an allowed upward import)
    ("_display.py", "from .ui import JobCard", "layers", "sora_nb._display -> sora_nb.ui"),
    ("simulator/_config.py", "from .. import _validation", "simulator-alone",
     "sora_nb.simulator._config -> sora_nb._validation"),
    ("_contract.py", "from . import simulator", "client-without-simulator", "sora_nb._contract -> sora_nb.simulator"),
    ("_polling.py", "import asyncio", "pure-core", "sora_nb._polling -> asyncio"),
    ("ui/_table.py", "from ..simulator._store import SimulatorState", "front-doors",
     "sora_nb.ui._table -> sora_nb.simulator._store"),
])  # fmt: skip
def test_each_contract_refuses_the_import_it_forbids(tmp_path: Path, module: str, line: str, contract: str,
                                                     reported: str) -> None:
    """On a copy of the package with one forbidden import added, that import breaks its contract."""
    shutil.copytree(ROOT / "sora_nb", tmp_path / "sora_nb", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "sora_nb" / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{line}  # noqa\n")
    config = str(ROOT / "pyproject.toml")
    broken = _run(str(BIN / "lint-imports"), config, "--no-cache", "--no-logo", "--contract", contract,
                  package_root=tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "0 kept, 1 broken." in broken.stdout and reported in broken.stdout, broken.stdout


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
