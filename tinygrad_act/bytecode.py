"""``python -m tinygrad_act.bytecode`` (``make setup`` runs it after installing): the bytecode of every module a
run imports, written once (it runs a two-step experiment in a temporary directory to find them).

Python writes a module's bytecode (``__pycache__``) the first time it imports it, unless PYTHONDONTWRITEBYTECODE
is set, as on some shared machines and containers: there every run, and its drawing process, compiles numpy,
matplotlib and this package from source again: a default run took 12.0-12.9 s of CPU without this, 8.4-8.5 s
with it (measured side by side at load 11, /usr/bin/time of the command and its drawing processes). The virtual
environment is installed without precompiled bytecode (a quicker first install); this compiles only what a run
imports: the command line, the training path and what the drawing process loads (matplotlib with the fonts,
mathtext and PNG encoder of the figures), about 540 files. Bytecode never goes stale unseen: Python compares it
with its source's modification time and size on import.
"""

from __future__ import annotations

import contextlib
import io
import py_compile
import sys
import tempfile

from . import cli
from .lab.show import drawing, plots

# A run as small as runs get, for the modules a run imports only when it runs (numpy.random, tqdm, threadpoolctl)
_SMALL_RUN = ["experiment", "--depth", "2", "--width", "4", "--steps", "2", "--data", "spirals:n=64",
              "--batch-size", "8", "--no-figures"]  # fmt: skip


def main() -> int:
    if plots.unavailable() is None:
        drawing.prepare()  # what a drawing process imports: matplotlib, its fonts, mathtext, the PNG encoder
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        cli.main([*_SMALL_RUN, "--no-progress", "--out", f"{tmp}/run"])
    written = 0
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if source and source.endswith(".py"):
            try:
                py_compile.compile(source, doraise=True)
            except (OSError, py_compile.PyCompileError):  # a read-only or odd file: it compiles on import as before
                continue
            written += 1
    print(f"bytecode written for {written} modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
