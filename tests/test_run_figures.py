"""Run figures in the one style (fixed ranges, "out" ticks, theory dashed, underflow kept) and the probe fields
behind "why, per layer" (weights' gain x activation's gain) and the histograms."""

import io
import math
import shutil

import numpy as np
import pytest
from conftest import FINISHED_RUN
from probing import measured_step
from tinygrad_act.optim import SGD

from tinygrad_act import Tensor
from tinygrad_act.lab.measure.probes import HISTOGRAM_BINS, LayerProbe
from tinygrad_act.lab.measure.records import read_metrics
from tinygrad_act.lab.show import plots, run_figures
from tinygrad_act.lab.show.report import layer_table
from tinygrad_act.nn import MLP, cross_entropy

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(16, 4)), RNG.integers(0, 3, size=16)
WIDTH = 6


def _measured(act, steps=1, init="xavier_normal"):
    model = MLP(4, [WIDTH] * 3, 3, activation=act, init=init, seed=1)
    optimizer = SGD(model.parameters(), lr=0.1)
    probe = LayerProbe(model, optimizer)
    records = []
    for step in range(steps):
        loss = cross_entropy(model(Tensor(X)), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        records.append({"step": step, "loss": loss.item(), "accuracy": 0.3, **probe.record})
    return model, probe, records


def test_relu_activation_gain_is_the_fraction_of_active_units_and_inactive_is_the_rest():
    _, _, (record,) = _measured("relu")
    for layer in record["layers"][:-1]:
        assert layer["activation_gain"] == pytest.approx(1 - layer["inactive_fraction"], rel=1e-12)
        assert 0 < layer["inactive_fraction"] < 1
    assert record["layers"][-1]["activation_gain"] is None and record["layers"][-1]["inactive_fraction"] is None


def test_sigmoid_activation_gain_is_at_most_a_sixteenth_and_nothing_is_inactive():
    _, _, (record,) = _measured("sigmoid")
    for layer in record["layers"][:-1]:
        assert 0 < layer["activation_gain"] <= 1 / 16
        assert layer["inactive_fraction"] == 0


def test_weight_gain_is_fan_in_times_the_mean_square_weight_before_the_update():
    model = MLP(4, [WIDTH] * 3, 3, activation="tanh", seed=1)
    before = [layer.weight.data.copy() for layer in model.layers]
    for layer, weight in zip(measured_step(model, X, Y, lr=0.5)["layers"], before):
        assert layer["weight_gain"] == pytest.approx(weight.shape[0] * np.mean(weight**2), rel=1e-12)


def test_histogram_counts_sum_to_batch_times_width_at_init_and_at_the_end():
    _, probe, _ = _measured("tanh", steps=3)
    arrays = probe.histogram_arrays()
    assert int(arrays["init_step"]) == 0 and int(arrays["end_step"]) == 2
    for key in ("init", "end"):
        assert arrays[f"{key}_activations"].shape == (3, HISTOGRAM_BINS)
        assert (arrays[f"{key}_activations"].sum(axis=1) == len(X) * WIDTH).all()
        assert (arrays[f"{key}_deltas"][:-1].sum(axis=1) == len(X) * WIDTH).all()
        assert arrays[f"{key}_deltas"][-1].sum() == len(X) * 3  # the output layer: batch x classes
    assert not np.array_equal(arrays["init_deltas"], arrays["end_deltas"])


def test_end_histogram_counts_the_latest_measured_step_as_it_was_even_if_its_arrays_are_overwritten_later():
    model = MLP(4, [WIDTH] * 3, 3, activation="tanh", seed=1)
    optimizer = SGD(model.parameters(), lr=0.1)
    probe = LayerProbe(model, optimizer)
    seen = []  # the hidden activations of each step, as the probe saw them
    for block in model.blocks:
        block.act.register_forward_hook(lambda module, inputs, out: seen.append(out.data))
    for _ in range(3):
        seen.clear()
        loss = cross_entropy(model(Tensor(X)), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    latest = [a.copy() for a in seen]
    for a in seen:
        a[...] = 1e9  # an engine reusing its buffers after the step: the counts must not change
    low, high = probe.activation_range
    expected = [np.histogram(np.clip(a, low, high), bins=HISTOGRAM_BINS, range=(low, high))[0] for a in latest]
    assert probe.histograms["end"]["step"] == 2
    np.testing.assert_array_equal(probe.histograms["end"]["activations"], expected)


def test_end_histogram_read_between_measured_steps_keeps_its_counts_when_the_copies_are_reused():
    model = MLP(4, [WIDTH] * 3, 3, activation="tanh", seed=1)
    optimizer = SGD(model.parameters(), lr=0.5)
    probe = LayerProbe(model, optimizer)
    seen, ends = [], []
    for block in model.blocks:
        block.act.register_forward_hook(lambda module, inputs, out: seen.append(out.data.copy()))
    for _ in range(3):
        seen.clear()
        loss = cross_entropy(model(Tensor(X)), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ends.append((probe.histograms["end"], list(seen)))  # steps 1 and 2 reuse the copies of the step before
    low, high = probe.activation_range
    for step, (entry, outputs) in enumerate(ends):
        expected = [np.histogram(np.clip(a, low, high), bins=HISTOGRAM_BINS, range=(low, high))[0] for a in outputs]
        assert entry["step"] == step
        np.testing.assert_array_equal(entry["activations"], expected)


def test_sigma_w2_of_weights_is_bit_for_bit_fan_in_times_np_mean_of_the_squares():
    """The probe's weight_gain (theory.sigma_w2_of_weights, without np.mean's overhead) keeps the logged numbers:
    the same float64 steps as fan_in * np.mean(W**2)."""
    from tinygrad_act.lab.theory.mean_field import sigma_w2_of_weights

    rng = np.random.default_rng(3)
    for shape in [(40, 64), (64, 64), (64, 10), (7, 3), (1000, 3)]:
        for dtype in (np.float64, np.float32):
            weight = (rng.normal(size=shape) * rng.uniform(0.01, 10)).astype(dtype)
            wide = weight.astype(np.float64)
            assert sigma_w2_of_weights(weight) == float(shape[0] * np.mean(wide * wide))


def test_a_zero_gradient_is_counted_in_the_first_bin_not_dropped():
    _, probe, _ = _measured("relu")
    deltas = probe.histograms["init"]["deltas"]
    assert (deltas[:-1].sum(axis=1) == len(X) * WIDTH).all()
    assert deltas[0][0] > 0  # relu: inactive units pass exactly zero


def _summary(ratio=1e-3, theory_factor=0.5, status="completed"):
    theory = {"applies": True, "ratio": ratio, "per_layer_factor": theory_factor}
    return {"status": status, "verdict": "vanishing", "ratio_init": ratio, "theory": theory, "message": ""}


def test_gradient_flow_has_the_fixed_range_out_ticks_and_the_theory_dashed():
    _, _, records = _measured("sigmoid", steps=2)
    fig, name = run_figures.gradient_flow(records, _summary())
    delta_ax, weight_ax = fig.axes[:2]
    assert name == "gradient_flow.png"
    for ax in (delta_ax, weight_ax):
        assert ax.get_ylim() == pytest.approx(plots.NORM_RANGE)
        assert ax.get_yscale() == "log"
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[0] == "1" and labels[-1] == "out"
    dashed = [line for line in delta_ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    predicted = dashed[0].get_ydata()  # delta_l = delta_L * 0.5^(L - l), anchored at layer L at step 0
    anchor = records[0]["layers"][2]["delta_norm"]
    assert predicted == pytest.approx([anchor * 0.25, anchor * 0.5, anchor])
    assert "step" in fig.axes[-1].get_ylabel()  # the step colour bar


def test_a_zero_gradient_is_drawn_as_a_marker_at_the_bottom_edge():
    _, _, records = _measured("sigmoid")
    records[0]["layers"][0]["delta_norm"] = 0.0
    fig, _ = run_figures.gradient_flow(records, _summary())
    edge = [line for line in fig.axes[0].get_lines() if line.get_marker() == plots.UNDERFLOW_MARKER["marker"]]
    assert len(edge) == 1 and list(edge[0].get_xdata()) == [1]
    assert edge[0].get_ydata()[0] == plots.NORM_RANGE[0]


def test_the_title_says_the_run_and_its_verdict_with_r():
    config = {"act": "sigmoid", "init": "auto", "init_resolved": {"name": "xavier_normal"}, "depth": 20}
    title = run_figures.run_title("x", {**config, "dtype": "float32"}, _summary(1.1e-12))
    assert all(word in title for word in ("sigmoid", "xavier_normal", "depth 20", "float32", "vanishing", "1.1e-12"))
    diverged = run_figures.run_title("x", config, {**_summary(), "status": "diverged", "message": "at step 3"})
    assert "DIVERGED" in diverged and "at step 3" in diverged


def test_the_heatmap_scale_is_the_same_for_every_run():
    scales = []
    for act in ("sigmoid", "relu"):
        _, _, records = _measured(act, steps=2)
        fig, _ = run_figures.gradient_heatmap(records)
        scales.append([mesh.get_clim() for ax in fig.axes[:2] for mesh in ax.collections])
    assert scales[0] == scales[1] == [tuple(np.log10(plots.NORM_RANGE))] * 2


def test_training_curves_draw_the_chance_levels():
    _, _, records = _measured("relu", steps=2)
    fig, _ = run_figures.training(records, 10, _summary())
    loss_ax, acc_ax = fig.axes
    assert any(line.get_ydata()[0] == pytest.approx(math.log(10)) for line in loss_ax.get_lines())
    assert any(line.get_ydata()[0] == pytest.approx(0.1) for line in acc_ax.get_lines())


def test_update_ratio_colours_layers_with_a_colour_bar_ending_in_out():
    _, _, records = _measured("relu", steps=2)
    fig, _ = run_figures.update_ratio(records)
    bar = fig.axes[-1]
    assert [t.get_text() for t in bar.get_yticklabels()][-1] == "out"
    assert fig.axes[0].get_legend().get_texts()[0].get_text().startswith("$10^{-3}$")


def test_the_layer_table_says_why_with_both_gains_and_their_product():
    _, _, records = _measured("sigmoid", steps=2)
    table = layer_table(records, width=200, wide=True)
    assert "σw²@0" in table and "E[f′²]@0" in table
    row = table.splitlines()[3].split()  # hidden layer 2
    layer = records[0]["layers"][1]
    assert float(row[6]) == pytest.approx(layer["activation_gain"], rel=0.01)
    assert float(row[7]) == pytest.approx(layer["weight_gain"] * layer["activation_gain"], rel=0.01)
    compact = layer_table(records, width=200).splitlines()[3].split()  # the default table keeps the product
    assert float(compact[4]) == pytest.approx(layer["weight_gain"] * layer["activation_gain"], rel=0.01)


def test_a_run_writes_every_figure_and_its_histograms(finished_run):
    out, summary = finished_run  # the shared run: the default settings, figures on
    names = {"gradient_flow", "gradient_heatmap", "update_ratio", "saturation", "snr", "training", "histograms"}
    names |= {"jacobian"}
    assert {p.stem for p in (out / "figures").glob("*.png")} == names == set(run_figures.names())  # the catalog
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in (out / "figures").glob("*.png"))
    assert sorted(summary["figures"]) == sorted(f"figures/{name}.png" for name in names)
    with np.load(out / "histograms.npz") as arrays:
        assert arrays["init_activations"].shape == (FINISHED_RUN["depth"], HISTOGRAM_BINS)


# ---- saturation.png, histograms.png and snr.png say what they show, and nothing empty ---------------------------
def test_saturation_draws_no_empty_panel_and_says_how_small_the_fractions_are():
    _, _, records = _measured("sigmoid", steps=2)  # a sigmoid net at unit gain: nothing saturated
    fig, name = run_figures.why_per_layer(records)
    assert name == "saturation.png" and len([ax for ax in fig.axes if ax.get_visible()]) == 1
    note = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert note.startswith(("no saturated, inactive or dead units", "saturated, inactive and dead units: at most"))


def test_saturation_draws_relus_inactive_and_dead_fractions_with_a_legend_by_kind_and_step():
    _, _, records = _measured("relu", steps=2, init="he_normal")
    fig, _ = run_figures.why_per_layer(records)
    fractions = fig.axes[1]
    assert fractions.get_ylabel() == "fraction" and fractions.get_ylim() == (0, 1)
    labels = [t.get_text() for t in fractions.get_legend().get_texts()]
    assert any(label.startswith("inactive") for label in labels) and labels[-2:] == ["step 0", "step 1"]
    inactive = [line for line in fractions.get_lines() if line.get_color() == "#009E73"]
    assert list(inactive[0].get_ydata()) == [layer["inactive_fraction"] for layer in records[0]["layers"][:-1]]


def test_exact_zero_deltas_are_a_bar_of_their_own_not_the_lowest_bin_of_the_log_histogram():
    _, probe, _ = _measured("relu", steps=2, init="he_normal")
    arrays = probe.histogram_arrays()
    zeros = arrays["init_delta_zeros"]
    assert zeros[0] > 0 and zeros[-1] == 0  # inactive ReLU units give exactly 0; the logits' deltas never
    assert (zeros <= arrays["init_deltas"][:, 0]).all()  # they are counted in the first bin
    fig, _ = run_figures.histogram_figure(arrays)
    layer_1 = fig.axes[3]  # the log10|δ| row, first column
    bars = [p for p in layer_1.patches if p.get_hatch() == "//"]
    total = arrays["init_deltas"][0].sum()
    assert bars and bars[0].get_height() == pytest.approx(zeros[0] / total)
    assert [t.get_text() for t in layer_1.get_xticklabels()][0] == "0"
    assert layer_1.get_xlim()[1] < 6 and bars[0].get_x() < layer_1.get_xlim()[0] + 2  # left of the log axis


def test_snr_draws_signal_and_noise_per_layer_on_the_fixed_norm_scale():
    _, _, records = _measured("tanh", steps=2)
    fig, _ = run_figures.gradient_snr(records, batch=len(X))
    left = fig.axes[0]
    assert left.get_ylim() == pytest.approx(plots.NORM_RANGE) and left.get_yscale() == "log"
    lines = {tuple(np.round(line.get_ydata(), 12)) for line in left.get_lines() if len(line.get_xdata()) == 4}
    first = records[0]["layers"]
    signal = tuple(np.round([layer["weight_grad_norm"] for layer in first], 12))
    noise = tuple(np.round([layer["weight_grad_norm"] / np.sqrt(layer["grad_snr"]) for layer in first], 12))
    assert signal in lines and noise in lines  # SNR = (signal / noise)^2: the gap between the two lines


# ---- plots.png lays out and draws each figure once, at the dpi it is written at ----------------------------------
def _pixels(content: bytes) -> np.ndarray:
    from PIL import Image  # matplotlib's own dependency

    return np.asarray(Image.open(io.BytesIO(content)).convert("RGBA"))


def test_png_lays_out_at_the_dpi_it_writes_and_draws_once_with_the_pixels_of_a_plain_savefig(monkeypatch):
    from matplotlib.figure import Figure

    _, _, records = _measured("relu", steps=2)
    drawn = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: drawn.append(fig.dpi) or original(fig, renderer))
    fig, _ = run_figures.update_ratio(records)  # a colour bar: tight_layout leaves a placeholder engine behind
    content = plots.png(fig, dpi=120)
    assert drawn == [120]  # not drawn again without rendering for the placeholder layout engine
    assert _pixels(content).shape[:2] == (round(4 * 120), round(8 * 120))  # figsize (8, 4)
    again, _ = run_figures.update_ratio(records)
    again.set_dpi(120)
    again.tight_layout()
    buffer = io.BytesIO()
    again.savefig(buffer, format="png", dpi=120)  # PIL's default compression, the placeholder engine kept
    assert np.array_equal(_pixels(content), _pixels(buffer.getvalue()))


def test_a_title_wider_than_its_figure_goes_on_two_lines_after_the_run_and_every_title_fits(finished_run, tmp_path):
    out, summary = finished_run
    path = tmp_path / ("a-run-named-at-some-length-" * 2 + "s0")
    shutil.copytree(out, path)
    lines = {}
    for fig, name in run_figures.drawings(path, read_metrics(path), summary):
        fig.set_dpi(plots.DPI)  # at the dpi it is written at; laying out (tight_layout) leaves a suptitle where it is
        box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width, name  # never cut at the figure's edges
        lines[name, fig.get_figwidth()] = fig._suptitle.get_text().split("\n")
    what, said = lines["gradient_flow.png", 11][0].split(" — ")  # 11 inches: one line
    assert what.startswith(path.name) and len(lines["gradient_flow.png", 11]) == 1
    assert lines["update_ratio.png", 8] == [what, said]  # 8 inches: the run, then its verdict


def test_a_process_parses_each_maths_label_once_however_many_figures_and_labels_it_draws(monkeypatch):
    from matplotlib.mathtext import MathTextParser

    def labelled():  # more distinct labels than matplotlib's own cache keeps (50)
        fig, ax = plots.figure(figsize=(4, 3))
        for i in range(60):
            ax.text(0.5, i / 60, rf"$x_{{{i}}}$", fontsize=6)
        return fig

    first = plots.png(labelled())
    parsed = []
    original = MathTextParser.parse
    monkeypatch.setattr(MathTextParser, "parse", lambda *args, **kw: parsed.append(args[1]) or original(*args, **kw))
    assert plots.png(labelled()) == first and parsed == []  # the same picture, nothing parsed again
