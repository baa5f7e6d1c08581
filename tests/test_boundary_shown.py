"""What is shown is escaped (issue 18, item 9): user text never reaches matplotlib's math parser, every string in
report.html is escaped, and a malformed field in summary.json or metrics.jsonl read back by compare, show or
``Run.load`` is one line naming the file and the field."""

import io
import json
import re

import pytest
from hostile import TIMEOUT_S, TINY, call, command, copy_run, refused, succeeded
from matplotlib.text import Text

import tinygrad_act
from tinygrad_act.lab.measure.records import read_metrics, read_summary
from tinygrad_act.lab.run.api import Run
from tinygrad_act.lab.show import compare, html, plots, run_figures

pytestmark = pytest.mark.usefixtures("data_cache")


DOLLARS = ["cost$5$", "a$\\frac{1}{0}$b", "odd$", "$^$", "\\$$"]


@pytest.mark.parametrize("name", DOLLARS)
def test_a_dollar_in_a_run_name_or_activation_reaches_no_math_parser(finished, name):
    records = read_metrics(finished)
    summary = read_summary(finished)
    config = {**json.loads((finished / "config.json").read_text()), "act": name, "init_resolved": {"name": name}}
    fig, ax = plots.figure()
    title = run_figures.run_title(name, config, summary)
    fig.suptitle(title)
    label = compare._label(compare.Run(finished / name, config, summary, records[0]), name)
    ax.plot([1, 2], [1, 2], label=label)
    plots.style_legends(ax, {name: "#000000"}, {name: "-", "other": "--"})
    fig.savefig(io.BytesIO(), format="png")  # draws every text: a $ read as maths would raise here, or eat the $s
    texts = [text.get_text() for text in fig.findobj(Text)]
    shown = name.replace("$", "\\$")  # matplotlib draws an escaped $ as a dollar, never as maths
    assert all(shown in text for text in (title, label))
    assert shown in texts and f"init = {shown}" in texts


def test_a_dollar_in_a_run_name_is_drawn_literally_end_to_end(tmp_path, finished):
    path = copy_run(finished, tmp_path / "cost$5$")
    slow = 3 * TIMEOUT_S  # a figure and a comparison: on a loaded shared machine, more than 20 s is no hang
    # every figure of the run is titled with its name: one shows it
    run = succeeded(call(tinygrad_act.run, **{**TINY, "figures": ["gradient_flow"]}, out=str(path), force=True,
                         timeout=slow))  # fmt: skip
    assert run.summary.get("figures") and "figures_error" not in run.summary
    succeeded(command("compare", run.dir, "--out", tmp_path / "c.png", timeout=slow))


HOSTILE = "<script>alert(1)</script>"


def test_every_string_in_report_html_is_escaped_the_theorys_reason_too(tmp_path, finished):
    records = read_metrics(finished)
    summary = {**read_summary(finished), "message": HOSTILE, "verdict": "<b>", "verdict_final": "<b>",
               "theory": {"applies": False, "reason": HOSTILE}, "figures": [f"figures/{HOSTILE}.png"]}  # fmt: skip
    config = {"act": "<b>bold</b>", "init": HOSTILE, "depth": 2, "width": 4, "dtype": "<i>", "data": HOSTILE,
              "steps": "<u>"}  # fmt: skip
    page = html.run_page(tmp_path / "<i>run</i>", config, records, summary)
    assert "<script" not in page and "<b>" not in page and "<i>" not in page and "<u>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;bold" in page
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr", "th", "td",
                    "figure", "img", "figcaption", "sub", "sup", "a"}  # fmt: skip
    sweep = html.sweep_page(tmp_path / HOSTILE, [HOSTILE], [[HOSTILE]], [HOSTILE])
    assert "<script" not in sweep


SUMMARY_DAMAGE = {
    "test_accuracy": "abc",
    "verdict": {},
    "ratio_init": "x",
    "status": None,
    "files": 5,
    "theory": [],
    "message": ["a"],
    "steps_done": "5",
    "per_layer_factor_init": [1],
    "verdict_final": 3,
    "gain_init": "g",
    "jacobian": "j",
    "resumed": "twice",
    "tensorboard_error": 5,
}


@pytest.mark.parametrize("field", list(SUMMARY_DAMAGE))
def test_a_malformed_summary_field_is_one_line_naming_the_file_and_field(tmp_path, finished, field):
    path = copy_run(finished, tmp_path / "run")
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, field: SUMMARY_DAMAGE[field]}))
    for outcome in (command("show", path), command("compare", path, "--out", tmp_path / "c.png"),
                    call(Run.load, path)):  # fmt: skip
        refused(outcome, "summary.json", field)


@pytest.mark.parametrize("path", [("jacobian", "examples"), ("jacobian", "singular_values"), ("theory", "ratio"),
                                  ("jacobian", "theory", "weights")], ids=".".join)  # fmt: skip
def test_an_inner_field_missing_where_it_applies_is_one_line_naming_it(tmp_path, finished, path):
    copy = copy_run(finished, tmp_path / "run")
    summary = json.loads((copy / "summary.json").read_text())
    holder = summary
    for key in path[:-1]:
        holder = holder[key]
    assert holder.get("applies") is not False
    del holder[path[-1]]
    (copy / "summary.json").write_text(json.dumps(summary))
    for outcome in (command("show", copy), command("compare", copy, "--out", tmp_path / "c.png")):
        refused(outcome, "summary.json", path[-1])


SPECTRUM_DAMAGE = {  # the exact spectrum's fields (measure/jacobian.py), and a resume's record
    "rank of text": ("rank", lambda j: j.update(rank=["a"] * len(j["rank"]))),
    "rank for no example": ("rank", lambda j: j.update(rank=[], zeros=[], unresolved=[])),
    "counts beyond the width": ("width", lambda j: j.update(zeros=[z + 1 for z in j["zeros"]])),
    "no width beside the rank": ("width", lambda j: j.pop("width")),
    "a width of null": ("width", lambda j: j.update(width=None)),
    "a bound too many": ("log10_bounds", lambda j: j.update(log10_bounds=[*j["log10_bounds"], -400.0])),
    "a logarithm too few": ("log10_singular_values", lambda j: j.update(
        log10_singular_values=j["log10_singular_values"][1:])),
    "logarithms of text": ("log10_singular_values", lambda j: j.update(
        log10_singular_values=["x"] * len(j["log10_singular_values"]))),
    "relative error of text": ("relative_error", lambda j: j.update(relative_error="small")),
    "a null mean square": ("mean_s2", lambda j: j.update(mean_s2=None)),
    "std of s^2 as a list": ("std_s2", lambda j: j.update(std_s2=[1.0])),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(SPECTRUM_DAMAGE))
def test_a_malformed_spectrum_is_one_line_naming_the_field(tmp_path, finished, damage):
    path = copy_run(finished, tmp_path / "run")
    summary = json.loads((path / "summary.json").read_text())
    assert summary["jacobian"]["applies"] and "rank" in summary["jacobian"]
    field, change = SPECTRUM_DAMAGE[damage]
    change(summary["jacobian"])
    (path / "summary.json").write_text(json.dumps(summary))
    for outcome in (command("show", path), command("compare", path, "--out", tmp_path / "c.png"),
                    call(Run.load, path)):  # fmt: skip
        refused(outcome, "summary.json", field)


@pytest.mark.parametrize("resumed", [{"times": "2"}, {"from_steps": ["a"]}, {"from_step": -1}], ids=str)
def test_a_malformed_resume_record_is_one_line(tmp_path, finished, resumed):
    path = copy_run(finished, tmp_path / "run")
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "resumed": resumed}))
    refused(command("show", path), "summary.json", *resumed)


def test_a_summary_without_a_status_is_one_line(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    summary = json.loads((path / "summary.json").read_text())
    del summary["status"]
    (path / "summary.json").write_text(json.dumps(summary))
    refused(command("show", path), "summary.json", "status")


RECORD_DAMAGE = {
    "layers as an object": lambda r: {**r, "layers": {"a": 1}},
    "a delta norm of text": lambda r: {**r, "layers": [{**r["layers"][0], "delta_norm": "x"}, *r["layers"][1:]]},
    "a layer that is a number": lambda r: {**r, "layers": [1, *r["layers"][1:]]},
    "a step of text": lambda r: {**r, "step": "0"},
    "a loss of text": lambda r: {**r, "loss": "low"},
    "a record that is a list": lambda r: [r],
    "no layers": lambda r: {k: v for k, v in r.items() if k != "layers"},
}


@pytest.mark.parametrize("damage", list(RECORD_DAMAGE))
def test_a_malformed_record_is_one_line_naming_metrics_jsonl(tmp_path, finished, damage):
    path = copy_run(finished, tmp_path / "run")
    lines = (path / "metrics.jsonl").read_text().splitlines()
    lines[0] = json.dumps(RECORD_DAMAGE[damage](json.loads(lines[0])))
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    for outcome in (command("show", path), command("compare", path, "--out", tmp_path / "c.png"),
                    call(Run.load, path)):  # fmt: skip
        refused(outcome, "metrics.jsonl")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run without figures (faster than hostile's), made once; tests copy it."""
    path = tmp_path_factory.mktemp("made") / "run"
    succeeded(call(tinygrad_act.run, **TINY, out=str(path)))
    return path
