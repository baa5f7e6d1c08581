"""experiments/tutorial.ipynb: it uses the public API only, runs top to bottom (nbclient, the python3 kernel of this
interpreter) in a fresh working directory without an error or a warning, teaches its lesson (the healthy net
learns, the vanishing one stays at chance after the same steps), and is stored with the outputs it gives
(`make notebook` writes them), so it reads on GitHub as it runs."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

import tinygrad_act

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "experiments" / "tutorial.ipynb"


@pytest.fixture(scope="module")
def nbformat():
    """nbformat, and nbclient checked importable: each test skips without them (make test installs them);
    imported by the tests only, not at collection, where every pytest worker would import them for one that runs."""
    pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    return pytest.importorskip("nbformat", reason="the test extra installs nbformat")


def _runner():
    spec = importlib.util.spec_from_file_location("notebook_runner", ROOT / "experiments" / "notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def executed(nbformat, tmp_path_factory):
    """The notebook executed afresh, in a fresh working directory."""
    return _runner().execute(NOTEBOOK, tmp_path_factory.mktemp("notebook"))


def _code(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _texts(cell) -> list[str]:
    """A cell's outputs as text, images left out (their bytes depend on the plotting library's version); a stream
    in one piece however the kernel cut it."""
    texts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            text = f"{output['name']}: "
            if texts and texts[-1].startswith(text):
                texts[-1] += output["text"]
            else:
                texts.append(text + output["text"])
        for kind, value in sorted(output.get("data", {}).items()):
            if kind in ("text/plain", "text/html"):
                text = value if isinstance(value, str) else "".join(value)
                texts.append(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png", text))
    return texts


def test_the_tutorial_uses_only_the_public_api(nbformat):
    source = "\n".join(cell.source for cell in _code(nbformat.read(NOTEBOOK, as_version=4)))
    imported = re.findall(r"^\s*(?:from|import)\s+(tinygrad_act\S*)(?:\s+import\s+(.+))?$", source, re.M)
    assert imported and all(module == "tinygrad_act" for module, _ in imported), imported
    names = {name.strip() for _, names in imported for name in names.split(",") if name.strip()}
    used = set(re.findall(r"\btinygrad_act\.(\w+)", source))
    assert names | used <= set(tinygrad_act.__all__), (names | used) - set(tinygrad_act.__all__)


def test_the_tutorial_runs_top_to_bottom_without_an_error_or_a_warning_and_shows_its_figures(executed):
    code = _code(executed)
    assert all(cell.execution_count for cell in code)  # every cell ran
    for cell in code:
        assert not [o for o in cell.outputs if o["output_type"] == "error"]
        for output in cell.outputs:
            if output["output_type"] == "stream" and output["name"] == "stderr":
                assert "Warning" not in output["text"] and "Traceback" not in output["text"], output["text"]
    text = "".join(t for cell in code for t in _texts(cell))
    assert "sigmoid'(0.0) = 0.2500" in text
    images = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    inline = text.count("data:image/png")  # each Run shown in the notebook: its gradient-flow figure
    assert len(images) >= 2 and inline == 2


def test_the_tutorial_teaches_that_the_healthy_net_learns_and_the_vanishing_one_does_not(executed):
    table = next(t for cell in _code(executed) for t in _texts(cell) if t.startswith("stdout: network"))
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:] if line.strip()}
    sigmoid, relu = rows["sigmoid"], rows["relu"]
    assert sigmoid[1] == "vanishing" and relu[-3] == "healthy"
    vanishing, healthy = float(sigmoid[-1].rstrip("%")), float(relu[-1].rstrip("%"))
    assert healthy >= 80 and vanishing <= 40 and healthy - vanishing >= 40  # chance is 33.3%


def test_the_stored_notebook_holds_the_outputs_it_gives(nbformat, executed):
    stored = nbformat.read(NOTEBOOK, as_version=4)
    assert [cell.source for cell in _code(stored)] == [cell.source for cell in _code(executed)]
    for old, new in zip(_code(stored), _code(executed)):
        assert _texts(old) == _texts(new), "experiments/tutorial.ipynb is stale: run make notebook"
        assert old.execution_count == new.execution_count
    assert not any("execution" in cell.metadata for cell in stored.cells)  # no timestamps stored
    assert json.loads(NOTEBOOK.read_text())["nbformat"] == 4
