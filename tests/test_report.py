"""The terminal report: verdict sentences and the per-layer table read as the numbers say."""

import math

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
    assert row[:7] == ["1", fmt(0.029, 3), fmt(0.5, 3), fmt(0.029, 3), fmt(0.5, 3), pct(0.0), pct(0.0)]
