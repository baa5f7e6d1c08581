"""report.html: one self-contained page per run and per sweep (every figure inline, no network, user data
escaped). The page in a real browser is checked by bench/check_html.py (`make check-html`), named in README."""

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tinygrad_act.common import files
from tinygrad_act.common.errors import RunDirError
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.run.experiment import run
from tinygrad_act.lab.show import html
from tinygrad_act.lab.sweep.grid import Sweep, run_sweep

TINY = dict(depth=3, width=8, steps=3, data="spirals:n=200")
HOSTILE = "<script>alert('x')</script>"


class _Page(HTMLParser):
    """The parts of a page the tests look at: tags seen, the title, image sources, text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.images, self.text, self._in_title, self.title = [], [], [], False, ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_title = tag == "title"
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title += data


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, module_draw_only):
    """A run with figures whose directory name is markup (a run's name is user data): two of them rendered, the page
    inlines every figure the run has, however many (every figure's code still runs)."""
    module_draw_only("gradient_flow.png", "training.png")
    path = tmp_path_factory.mktemp("html") / HOSTILE.replace("/", "|")
    summary = run(Config(**TINY, out=str(path)), progress=False)
    return path, summary


def test_a_run_page_has_a_title_tables_and_every_figure_inline_and_nothing_from_a_network(hostile_run):
    path, summary = hostile_run
    text = (path / "report.html").read_text(encoding="utf-8")
    page = _Page(text)
    assert path.name in page.title and summary["verdict"] in page.title
    assert page.tags.count("table") >= 2  # the summary numbers and the layer table
    figures = sorted((path / "figures").glob("*.png"))
    assert figures and sorted(page.images) == sorted(_data_uri(f) for f in figures)
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"https?:|//", without_images, flags=re.IGNORECASE)
    assert "link" not in page.tags and "script" not in page.tags  # no external CSS, no script at all


def test_a_hostile_run_name_is_shown_as_text_never_as_markup(hostile_run):
    path, _ = hostile_run
    page = _Page((path / "report.html").read_text(encoding="utf-8"))
    assert "script" not in page.tags
    assert any(path.name in data for data in page.text)  # the name is there, as text


def test_the_run_page_shows_the_verdict_the_theory_and_the_layers_and_is_listed_among_the_files(hostile_run):
    path, summary = hostile_run
    text = " ".join(_Page((path / "report.html").read_text(encoding="utf-8")).text)
    assert summary["verdict"] + ": layer 1 receives" in text and "theory (mean field" in text
    assert "out" in text and "delta@0" in text
    assert "report.html" in summary["files"]
    assert "report.html" in json.loads((path / "summary.json").read_text())["files"]


def test_a_run_without_figures_has_a_page_without_images_that_says_why(tmp_path):
    path = tmp_path / "run"
    summary = run(Config(**TINY, out=str(path), figures=False), progress=False)
    page = _Page((path / "report.html").read_text(encoding="utf-8"))
    assert not page.images and "report.html" in summary["files"]
    assert "no figures: the run was made with --no-figures" in " ".join(page.text)
    assert summary["verdict"] + ": layer 1 receives" in " ".join(page.text)


def test_a_page_that_cannot_be_written_is_reported_in_the_summary_and_never_loses_the_run(tmp_path, monkeypatch):
    def refuse(path, content):
        raise RunDirError(f"{path}: no space left on device")

    monkeypatch.setattr(files, "atomic_write", refuse)
    result = html.write_run_page(tmp_path, {"depth": 3}, [], {"figures": ["figures/x.png"]})
    assert "no space left" in result["report_html_error"]


def test_a_sweep_page_holds_the_sweep_table_every_sweep_figure_inline_and_escapes_its_cells(tmp_path):
    root = tmp_path / "sweep"
    rows = run_sweep(Sweep({"act": ["sigmoid", "relu"]}, {**TINY, "steps": 2}, "t"), root, progress=False)
    text = (root / "report.html").read_text(encoding="utf-8")
    page = _Page(text)
    assert "t" in page.title and page.tags.count("table") == 1
    assert page.tags.count("tr") == len(rows) + 1
    for row in rows:  # each run's name links to its own page, which exists
        assert f'<a href="runs/{row["run"]}/report.html">' in text
        assert (root / "runs" / row["run"] / "report.html").is_file()
    shared = next(data for data in page.text if data.startswith("Every run:"))
    assert "depth 3" in shared and "steps 2" in shared and "jacobian auto" in shared
    assert "act " not in shared and "capture" not in shared  # the grid's own key is a column
    assert 'class="full"' in text  # the whole table, never cut to the page's width
    figures = sorted((root / "figures").glob("*.png"))
    assert figures and sorted(page.images) == sorted(_data_uri(f) for f in figures)
    hostile = html.sweep_page(root, ["act"], [[HOSTILE]], [HOSTILE])
    assert "script" not in _Page(hostile).tags and HOSTILE not in hostile


def test_the_run_page_names_the_initializer_auto_chose_and_shows_each_layers_gains(hostile_run):
    path, _ = hostile_run
    text = " ".join(_Page((path / "report.html").read_text(encoding="utf-8")).text)
    chosen = json.loads((path / "config.json").read_text())["init_resolved"]["name"]
    assert f"init {chosen}," in text and "init auto" not in text
    assert "σw²@0" in text and "E[f′(z)²]@0" in text and "product@0" in text
