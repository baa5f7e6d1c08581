"""The terminal report: verdict sentences and the per-layer table read as the numbers say, within the terminal's
width (COLUMNS, else the terminal, else 100): the columns that tell the story, --wide for all, prose wrapped at
word boundaries, the log bar scaled to what is left."""

import math
import os

import pytest

from tinygrad_act import cli
from tinygrad_act.common import files
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.show import report
from tinygrad_act.lab.show.format import fmt, pct
from tinygrad_act.lab.show.report import layer_table, verdict_line


def _record(step, deltas):
    layers = [{"delta_norm": d, "weight_grad_norm": d, "saturation": 0.0, "dead_fraction": 0.0} for d in deltas]
    return {"step": step, "layers": layers}


def test_verdict_line_states_the_ratio_and_the_factor_per_layer():
    line = verdict_line("vanishing", 1.1e-12, 0.25, 20)
    assert line == "vanishing: layer 1 receives 1.1e-12 of the gradient of layer 20 (x0.25 per layer)"
    assert "times the gradient" in verdict_line("exploding", 3.2e5, 1.9, 20)


def test_a_gradient_that_underflowed_to_zero_is_named_as_such():
    line = verdict_line("vanishing", 0.0, math.nan, 80, dtype="float32")
    assert "no gradient at all" in line and "nan" not in line and "float64" in line


def test_non_finite_gradients_are_exploding_without_a_ratio():
    assert "not finite" in verdict_line("exploding", math.inf, math.nan, 20)


def test_a_flat_profile_draws_bars_of_equal_length_and_decades_draw_shorter_bars():
    flat = layer_table([_record(0, [0.11, 0.1, 0.12, 0.1]), _record(9, [0.1] * 4)]).splitlines()[2:6]
    assert len({row.count("#") for row in flat}) == 1
    steep = layer_table([_record(0, [1e-12, 1e-8, 1e-4, 1.0]), _record(9, [1.0] * 4)]).splitlines()[2:6]
    bars = [row.count("#") for row in steep]
    assert bars == sorted(bars) and bars[0] < bars[-1]


def test_the_layer_table_writes_its_numbers_with_the_one_formatter():
    row = layer_table([_record(0, [0.029, 1e-5, 2.0]), _record(9, [0.5] * 3)]).splitlines()[2].split()
    assert row[:7] == ["1", fmt(0.029, 3), fmt(0.5, 3), fmt(0.029, 3), "-", pct(0.0), pct(0.0)]  # no gains: "-"


def _show(finished_run, capsys, monkeypatch, columns, *options):
    """``tinygrad-act show RUN_DIR`` in-process with COLUMNS set; its output lines."""
    monkeypatch.setenv("COLUMNS", str(columns))
    assert cli.main(["show", str(finished_run[0]), *options]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_every_line_of_the_report_fits_the_terminal_width(finished_run, capsys, monkeypatch, columns):
    lines = _show(finished_run, capsys, monkeypatch, columns)
    assert max(len(line) for line in lines) <= columns
    rows = lines[2:7]  # header, rule, then one row per layer
    assert [row.split()[0] for row in rows] == ["1", "2", "3", "4", "out"]
    assert max(row.count("#") for row in rows) <= report.BAR_WIDTH[1]
    if columns >= 100:  # the bar takes what the columns leave (up to its cap)
        assert max(len(row) for row in rows) == min(columns, len(lines[0]) - len("delta@0, log") + report.BAR_WIDTH[1])
    prose = [line for line in lines[7:] if line.startswith(("healthy", "vanishing", "exploding", "    "))]
    assert prose and all(len(line) <= min(columns, report.TEXT_WIDTH) for line in prose)


def test_the_default_table_shows_the_story_and_wide_shows_every_column(finished_run, capsys, monkeypatch):
    compact = _show(finished_run, capsys, monkeypatch, 100)[0].split()
    assert compact[:5] == ["layer", "delta@0", "delta@29", "|dW|@0", "σw²·E[f′²]"] and "snr@0" not in compact
    wide = _show(finished_run, capsys, monkeypatch, 100, "--wide")
    assert wide[0].split()[:12] == ["layer", "delta@0", "delta@29", "|dW|@0", "|dW|@29", "σw²@0", "E[f′²]@0",
                                    "σw²·E[f′²]", "sat", "dead", "snr@0", "snr@29"]  # fmt: skip
    assert len(wide[2]) > 100 and len(wide[2].split()) == 13  # every column, however wide; and the bar


def test_long_lines_are_wrapped_at_word_boundaries_and_keep_every_word(finished_run, capsys, monkeypatch):
    narrow, wide = (_show(finished_run, capsys, monkeypatch, columns) for columns in (80, 200))
    verdict = next(i for i, line in enumerate(narrow) if line.startswith("healthy"))
    assert narrow[verdict + 1].startswith("    ")  # continued, indented
    unwrap = " ".join(" ".join(narrow[narrow.index("") + 1 :]).split())
    assert unwrap == " ".join(" ".join(wide[wide.index("") + 1 :]).split())  # no word lost or broken


def test_the_width_is_100_when_the_terminal_is_unknown(monkeypatch):
    def no_terminal(*args):
        raise OSError("not a terminal")

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert report.terminal_width() == report.DEFAULT_WIDTH == 100
    monkeypatch.setenv("COLUMNS", "132")
    assert report.terminal_width() == 132


def test_a_resumed_run_says_from_which_step_and_how_many_times():
    summary = {"resumed": {"from_step": 600, "times": 2, "from_steps": [300, 600]}}
    assert report.resumed_line(summary).startswith("resumed 2 times, from steps 300, 600")
    assert report.resumed_line({"resumed": {"from_step": 40, "times": 1, "from_steps": [40]}}).startswith(
        "resumed once, from step 40"
    )
    assert report.resumed_line({}) is None


@pytest.mark.parametrize("key", ["figures_error", "figures_skipped"])
def test_figures_that_were_not_drawn_are_said_at_the_terminal_with_why(finished_run, key):
    path, summary = finished_run
    records, config = files.read_records(path), Config.read(path)
    drawn = report.terminal_report(summary, records, config, width=100)
    assert "not drawn" not in drawn and "figures/" in drawn
    why = "RuntimeError: FT_Load_Glyph failed" if key == "figures_error" else "matplotlib is not installed"
    failed = {**summary, key: why, "files": [name for name in summary["files"] if name != "figures/"]}
    text = report.terminal_report(failed, records, config, width=100)
    assert f"figures: not drawn — {why}" in text and "figures/" not in text
