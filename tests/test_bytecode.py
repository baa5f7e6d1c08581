"""tinygrad_act/bytecode.py: the bytecode of the modules a run and its drawing processes import, written at install."""

import importlib.util
import sys
from pathlib import Path

import matplotlib.figure
import numpy

from tinygrad_act import bytecode, cli


def test_bytecode_is_written_for_the_package_numpy_and_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path))  # where cache_from_source puts bytecode
    assert bytecode.main() == 0
    for module in (cli, numpy, matplotlib.figure):
        written = Path(importlib.util.cache_from_source(module.__file__))
        assert written.is_relative_to(tmp_path) and written.is_file()
    assert "bytecode written for" in capsys.readouterr().out
