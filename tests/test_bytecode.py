"""tinygrad_act/bytecode.py: the bytecode of the modules a run and its drawing processes import, written at install."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import numpy

from tinygrad_act import cli


def test_bytecode_is_written_for_the_package_numpy_and_matplotlib(tmp_path, monkeypatch):
    # a fresh interpreter, as make setup runs it: it compiles what a run imports, not what this test process holds;
    # PYTHONDONTWRITEBYTECODE, so that no file is there unless bytecode.py wrote it
    env = {
        **os.environ,
        "PYTHONPYCACHEPREFIX": str(tmp_path),
        "PYTHONPATH": os.getcwd(),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run([sys.executable, "-m", "tinygrad_act.bytecode"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "bytecode written for" in done.stdout
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path))  # where cache_from_source puts bytecode
    for module in (cli, numpy, matplotlib.figure):
        written = Path(importlib.util.cache_from_source(module.__file__))
        assert written.is_relative_to(tmp_path) and written.is_file()
