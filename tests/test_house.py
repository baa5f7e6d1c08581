"""The shape of the house (ARCHITECTURE.md) stays true: imports run one way, files and functions stay readable."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp  # import-linter's graph builder (the test extra)
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinygrad_act"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_ENGINE_CORE_LINES = 900  # graph.py + tensor.py + scalar.py: the part a reader must hold in mind
MAX_FOLDER_MODULES = 12  # a folder with more holds two concerns (issue 19: lab/ had 26)


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.fixture(scope="module")
def functions():
    """Every function of the package, from one parse of each file: (path, name, lines, [(line, module) it imports
    of the package's own])."""
    return [
        (path, node.name, node.end_lineno - node.lineno + 1, list(_own_imports(node)))
        for path in _sources()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


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


def test_no_function_is_longer_than_a_screenful(functions):
    long = {f"{path.relative_to(PACKAGE)}:{name}": n for path, name, n, _ in functions if n > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_engine_core_stays_small():
    lines = sum(
        len((PACKAGE / "engine" / f"{name}.py").read_text().splitlines()) for name in ("graph", "tensor", "scalar")
    )
    assert lines <= MAX_ENGINE_CORE_LINES, f"graph + tensor + scalar = {lines} lines (at most {MAX_ENGINE_CORE_LINES})"


def test_no_folder_of_the_package_holds_more_than_twelve_modules():
    crowded = {}
    for folder in {p.parent for p in _sources()}:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        if len(modules) > MAX_FOLDER_MODULES:
            crowded[str(folder.relative_to(PACKAGE.parent))] = len(modules)
    assert not crowded, f"folders over {MAX_FOLDER_MODULES} modules: {crowded}"


def _own_imports(function):
    """(line, module) of each import of the package's own modules inside ``function`` (its nested ones too)."""
    for node in ast.walk(function):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("tinygrad_act")):
            yield node.lineno, "." * node.level + (node.module or "")
        elif isinstance(node, ast.Import) and any(a.name.startswith("tinygrad_act") for a in node.names):
            yield node.lineno, ", ".join(a.name for a in node.names)


def test_no_function_imports_the_package_s_own_modules(functions):
    # A function-level import hides an edge from a reader (and once hid three circles); only optional third-party
    # packages (matplotlib, tensorboardX, torch) are imported where they are first needed.
    hidden = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path, _, _, imports in functions
        for line, module in imports
    ]
    assert not hidden, "\n".join(hidden)


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in sorted(imports):
        if start in index:
            continue
        work = [(start, iter(sorted(imports[start])))]
        index[start] = low[start] = counter = counter + 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter = counter + 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_package_has_no_import_circle_visible_or_hidden():
    graph = grimp.build_graph("tinygrad_act")  # module- and function-level imports alike
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert not _cycles(imports), _cycles(imports)


def test_the_circle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
