"""The tutorial notebook executed top to bottom and stored with its outputs: ``make notebook``
(``python experiments/notebook.py``), so that experiments/tutorial.ipynb reads on GitHub as it runs.

It runs in a fresh working directory (its runs go to ``runs/tutorial/`` there), with one BLAS thread and no timing
metadata, so the same code gives the same outputs: tests/test_notebook.py executes it again and compares.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

NOTEBOOK = Path(__file__).resolve().parent / "tutorial.ipynb"
ROOT = NOTEBOOK.parent.parent
TIMEOUT_S = 300  # per cell: the machine may be shared


def execute(path: Path = NOTEBOOK, directory: Path | None = None):
    """The notebook at ``path`` executed (nbclient, the python3 kernel of this interpreter) in ``directory`` (a
    fresh temporary one by default), with this checkout's package; raises CellExecutionError naming a failing cell."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as fresh:
        where = Path(directory or fresh)
        environment = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            "OPENBLAS_NUM_THREADS": "1",
            "TINYGRAD_ACT_CACHE": os.environ.get("TINYGRAD_ACT_CACHE") or str(where / ".cache" / "data"),
        }
        with mock.patch.dict(os.environ, environment):  # the kernel inherits them
            # the kernel is stopped, not asked to exit: its outputs are all in, and an orderly exit (Python
            # finalizing PyTorch and the rest) took 1.3-2.4 s and 1.5 s of CPU more
            client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=TIMEOUT_S, record_timing=False,
                                             shutdown_kernel="immediate",
                                             resources={"metadata": {"path": str(where)}})  # fmt: skip
            client.execute()
    return notebook


def main() -> int:
    """Execute experiments/tutorial.ipynb and write it back with its outputs."""
    import nbformat

    notebook = execute()
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK} with its outputs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
