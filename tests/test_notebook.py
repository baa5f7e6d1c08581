"""experiments/tutorial.ipynb runs top to bottom (nbclient; the python3 kernel runs this interpreter) in a fresh
working directory: no cell fails, nothing is written to stderr but progress bars, the figures are inline."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")  # make test installs it
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "experiments" / "tutorial.ipynb"
ROOT = NOTEBOOK.parent.parent


def _stderr_texts(cell) -> list[str]:
    return [o["text"] for o in cell.get("outputs", []) if o["output_type"] == "stream" and o["name"] == "stderr"]


def test_tutorial_notebook_runs_top_to_bottom_with_inline_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))
    # the kernel imports this checkout's package (as the subprocess tests do), with one BLAS thread
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)  # every cell ran
    for cell in code:
        errors = [o for o in cell.outputs if o["output_type"] == "error"]
        assert not errors, errors
        for text in _stderr_texts(cell):  # a warning (RuntimeWarning, a missing widget library) is a defect
            assert "Warning" not in text and "Traceback" not in text, text
    images = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the gradient-flow figure, r against depth, the compare figure
    text = "".join(o.get("text", "") for cell in code for o in cell.outputs if o["output_type"] == "stream")
    assert "sigmoid'(0.0) = 0.2500" in text and "vanishing" in text
    assert (tmp_path / "runs" / "tutorial" / "compare.png").exists()
