"""The shape of the house (ARCHITECTURE.md) stays true: imports run one way, files and functions stay readable."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinygrad_act"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_ENGINE_CORE_LINES = 900  # graph.py + tensor.py + scalar.py: the part a reader must hold in mind


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_run_one_way_and_the_core_stays_numpy_only():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is part of the test extra (pip install -e '.[test]')"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_file_is_longer_than_a_sitting():
    long = {
        str(p.relative_to(PACKAGE)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_is_longer_than_a_screenful():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_engine_core_stays_small():
    lines = sum(
        len((PACKAGE / "engine" / f"{name}.py").read_text().splitlines()) for name in ("graph", "tensor", "scalar")
    )
    assert lines <= MAX_ENGINE_CORE_LINES, f"graph + tensor + scalar = {lines} lines (at most {MAX_ENGINE_CORE_LINES})"
