"""tinygrad_act/bytecode.py: the bytecode of the modules a run and its drawing processes import, written at install."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import numpy

from tinygrad_act import cli

# make setup's step in a fresh interpreter, with py_compile.compile watched: every source it is asked to compile is
# listed, and those of WRITTEN are compiled for real into the test's directory (cfile=), so the test reads what
# bytecode.py asks for without compiling ~540 modules twice (the interpreter imports them from their bytecode).
WATCHED = """
import json, py_compile, sys
from pathlib import Path
from tinygrad_act import bytecode
out, written, asked = Path(sys.argv[1]), set(json.loads(sys.argv[2])), []
real = py_compile.compile
def watched(source, *args, **options):
    asked.append(source)
    if source in written:
        return real(source, cfile=str(out / (Path(source).parent.name + "-" + Path(source).name + "c")), **options)
py_compile.compile = watched
status = bytecode.main()
(out / "asked.json").write_text(json.dumps(asked))
sys.exit(status)
"""


def test_bytecode_is_written_for_the_package_numpy_and_matplotlib_and_not_for_what_a_run_never_imports(tmp_path):
    # a fresh interpreter, as make setup runs it: it compiles what a run imports, not what this test process holds
    # (hypothesis, pytest); PYTHONDONTWRITEBYTECODE, so that the interpreter's own imports write nothing
    sources = [module.__file__ for module in (cli, numpy, matplotlib.figure)]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-c", WATCHED, str(tmp_path), json.dumps(sources)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    asked = json.loads((tmp_path / "asked.json").read_text())
    assert f"bytecode written for {len(asked)} modules" in done.stdout
    assert set(sources) <= set(asked) and len(asked) > 100  # the package, numpy, matplotlib's figures and their kin
    held = [str(Path(spec.origin).parent) + os.sep for spec in map(importlib.util.find_spec, ("hypothesis", "pytest"))]
    assert not [source for source in asked if source.startswith(tuple(held))][:3]  # this process's, not a run's
    for source in sources:  # compiled for real: loadable bytecode, the source's magic number first
        written = tmp_path / (Path(source).parent.name + "-" + Path(source).name + "c")
        assert written.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
