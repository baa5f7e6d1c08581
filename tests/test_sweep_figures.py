"""The sweep's figures (lab/sweep/figures.py) have the intended structure: colour = activation, line style = init,
small legends, one heatmap per init on the shared colour scale with readable text, profiles in small multiples;
diverged and vanished runs are drawn, never dropped. Rows are made by hand: no training needed."""

import math

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from tinygrad_act.lab.show import plots
from tinygrad_act.lab.sweep import figures as sweep_figures

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "swish"]
INITS = ["xavier_normal", "he_normal"]
DEPTHS = [5, 10, 50]
KEYS = ["act", "init", "depth"]


def row(act, init, depth, status="completed", ratio=None):
    r = (
        ratio
        if ratio is not None
        else {"sigmoid": 10 ** (-0.62 * depth), "relu": 0.8 if init == "he_normal" else 1e-3}.get(act, 1.5)
    )
    return {
        "act": act, "init": init, "depth": depth, "status": status, "ratio_init": r,
        "predicted_ratio": r * 1.1, "run": f"{act}-{init}-{depth}",
    }  # fmt: skip


def grid_rows():
    return [row(a, i, d) for a in ACTS for i in INITS for d in DEPTHS]


def record(depth, deltas=None):
    deltas = deltas if deltas is not None else np.linspace(0.5, 1.0, depth)
    return {"layers": [{"delta_norm": float(d)} for d in deltas] + [{"delta_norm": 1.0}]}


def legends(fig):
    return [child for ax in fig.axes for child in ax.get_children() if type(child).__name__ == "Legend"]


def test_ratio_vs_depth_colours_by_activation_and_styles_by_init_with_small_legends():
    fig = sweep_figures.ratio_vs_depth(grid_rows(), KEYS)
    measured = [line for line in fig.axes[0].lines if line.get_linewidth() == 2]
    assert len(measured) == len(ACTS) * len(INITS)
    by_act = {}
    for line, (a, i) in zip(measured, [(a, i) for a in ACTS for i in INITS]):
        by_act.setdefault(a, set()).add(to_rgba(line.get_color()))
        assert line.get_linestyle() == {"-": "-", "--": "--"}[plots.init_linestyle(i, INITS)]
    assert all(len(colours) == 1 for colours in by_act.values())  # one colour per activation
    assert len({next(iter(c)) for c in by_act.values()}) == len(ACTS)  # distinct across activations
    assert legends(fig) and all(len(leg.get_texts()) <= 12 for leg in legends(fig))


def test_ratio_vs_depth_draws_theory_dashed_the_healthy_band_and_a_range_that_holds_every_run():
    fig = sweep_figures.ratio_vs_depth(grid_rows(), KEYS)
    ax = fig.axes[0]
    theory = [line for line in ax.lines if line.get_linewidth() == 1 and line.get_linestyle() == "--"]
    assert len(theory) >= len(ACTS) * len(INITS)
    low, high = ax.get_ylim()
    assert low <= 10 ** (-0.62 * 50) and high >= 10 ** plots.LOG_RATIO_RANGE[1]
    assert ax.patches  # the healthy band


def test_ratio_vs_depth_marks_diverged_and_vanished_runs_instead_of_dropping_them():
    rows = [
        row("relu", "he_normal", 5),
        row("selu", "he_normal", 10, status="diverged", ratio=30.0),
        row("sigmoid", "he_normal", 50, ratio=0.0),
        row("swish", "he_normal", 50, status="diverged", ratio=math.nan),
    ]
    fig = sweep_figures.ratio_vs_depth(rows, KEYS)
    markers = [line.get_marker() for line in fig.axes[0].lines]
    assert markers.count(plots.DIVERGED_MARKER["marker"]) == 2
    assert markers.count(plots.UNDERFLOW_MARKER["marker"]) == 1


def test_heatmap_has_one_panel_per_init_on_the_shared_diverging_scale_with_a_colorbar():
    rows = grid_rows()
    fig = sweep_figures.ratio_heatmap(rows, KEYS)
    images = [image for ax in fig.axes for image in ax.images]
    assert len(images) == len(INITS)
    for image in images:
        low, high = image.get_clim()
        assert low <= plots.LOG_RATIO_RANGE[0] and high >= plots.LOG_RATIO_RANGE[1] and low == -high
        assert image.get_cmap().name == plots.DIVERGING_COLORMAP
    assert [ax.get_title() for ax in fig.axes if ax.images] == [f"init = {i}" for i in INITS]
    assert len(fig.axes) == len(INITS) + 1  # and the colorbar


def test_heatmap_never_takes_a_median_over_two_inits():
    # ReLU with Xavier: 1e-3, with He: 0.8; a median over both (or a mean) would show neither.
    fig = sweep_figures.ratio_heatmap(grid_rows(), KEYS)
    for ax, expected in zip(fig.axes, (math.log10(1e-3), math.log10(0.8))):
        texts = {t.get_text().split("\n")[0] for t in ax.texts if t.get_position()[1] == ACTS.index("relu")}
        assert texts == {f"{expected:.1f}"}


def test_heatmap_text_contrasts_with_its_cell_and_marks_values_beyond_the_scale_diverged_runs_and_no_ratio():
    rows = grid_rows() + [row("gelu", "he_normal", 50, status="diverged", ratio=1e3)]
    rows = [{**r, "ratio_init": math.nan} if r["run"] == "swish-xavier_normal-10" else r for r in rows]  # 0 / 0
    fig = sweep_figures.ratio_heatmap(rows, KEYS)
    unmeasured = [t for t in fig.axes[0].texts if t.get_position() == (1, ACTS.index("swish"))][0]
    assert unmeasured.get_text() == "-" and to_rgba(unmeasured.get_color()) == to_rgba("black")
    sigmoid_deep = [t for t in fig.axes[0].texts if t.get_position() == (2, 0)][0]  # log10 r = -31
    assert "(<-16)" in sigmoid_deep.get_text() and to_rgba(sigmoid_deep.get_color()) == to_rgba("white")
    healthy = [t for t in fig.axes[1].texts if t.get_position() == (0, ACTS.index("relu"))][0]
    assert to_rgba(healthy.get_color()) == to_rgba("black")
    assert any("1 div" in t.get_text() for t in fig.axes[1].texts)


def test_delta_profiles_are_small_multiples_coloured_by_depth_with_a_colorbar_and_no_big_legend():
    rows = grid_rows()
    fig = sweep_figures.delta_profiles(rows, KEYS, {r["run"]: record(r["depth"]) for r in rows})
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert [ax.get_title() for ax in panels] == [f"act = {a}" for a in ACTS]
    assert all(len(ax.lines) == len(INITS) * len(DEPTHS) for ax in panels)
    assert any(ax.get_ylabel() == "depth $L$" for ax in fig.axes)  # the colorbar
    assert all(len(leg.get_texts()) <= 12 for leg in legends(fig))


def test_delta_profiles_mark_vanished_layers_and_diverged_runs():
    rows = [row("relu", "he_normal", 5, status="diverged"), row("sigmoid", "he_normal", 5)]
    records = {rows[0]["run"]: record(5), rows[1]["run"]: record(5, [0.0, 0.0, 1e-3, 0.1, 1.0])}
    fig = sweep_figures.delta_profiles(rows, KEYS, records)
    markers = [line.get_marker() for ax in fig.axes for line in ax.lines]
    assert plots.DIVERGED_MARKER["marker"] in markers and plots.UNDERFLOW_MARKER["marker"] in markers


@pytest.mark.parametrize("keys", [["norm", "bias", "depth"], ["lr", "seed"]])
def test_labels_name_each_grid_value_as_key_equals_value(keys):
    r = {"norm": "none", "bias": False, "depth": 5, "lr": 0.1, "seed": 0}
    text = sweep_figures.label(r, keys)
    assert all(f"{k}={r[k]}" in text for k in keys if k not in ("depth", "seed"))


def test_delta_profiles_draw_no_legend_when_the_colorbar_says_everything():
    rows = [row(a, "he_normal", d) for a in ("sigmoid", "relu") for d in DEPTHS]  # no init styles, no markers
    fig = sweep_figures.delta_profiles(rows, ["act", "depth"], {r["run"]: record(r["depth"]) for r in rows})
    assert legends(fig) == []  # an empty legend box says nothing


def test_a_heatmap_cell_just_below_zero_reads_0_0_never_minus_0_0():
    rows = [row("tanh", "he_normal", 5, ratio=10**-0.04), row("relu", "he_normal", 5, ratio=10**0.04)]
    fig = sweep_figures.ratio_heatmap(rows, ["act", "depth"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.0", "0.0"]
