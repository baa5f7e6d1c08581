"""A measured step's record as written: records.record_lines (the numbers of a record's layers turned into text once
for metrics.jsonl and metrics.csv) writes exactly what json.dumps (common/files.dumps) and the csv module write,
for every kind of value a record may hold."""

import csv
import io
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_act.common.files import dumps
from tinygrad_act.lab.measure import records
from tinygrad_act.lab.measure.records import CSV_FIELDS, STEP_FIELDS, layer_name, record_lines


def _reference(record: dict) -> tuple[str, str]:
    """dumps for the JSON line, csv.DictWriter for the rows: one per layer, the step's fields repeated on each."""
    head = {k: record.get(k) for k in STEP_FIELDS}
    count = len(record["layers"])
    rows = [{**head, **layer, "layer": layer_name(i, count)} for i, layer in enumerate(record["layers"])]
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore").writerows(rows)
    return dumps(record) + "\n", buffer.getvalue()


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3, 1e16, 1e-5]),
)
PLAIN = st.one_of(FLOATS, FLOATS.map(np.float64), st.none(), st.integers(-(2**70), 2**70))
NUMPY = st.floats(width=32).map(np.float32) | st.integers(-9, 9).map(np.int64)
SCALARS = st.one_of(PLAIN, st.booleans(), st.text(max_size=5), NUMPY)
CONTAINERS = lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)  # noqa: E731
NESTED = st.recursive(SCALARS, CONTAINERS, max_leaves=6)
LAYER_KEYS = st.sampled_from(["layer", *records.LAYER_FIELDS])
LAYERS = st.one_of(
    st.lists(st.dictionaries(LAYER_KEYS, PLAIN, min_size=1, max_size=14), min_size=1, max_size=6),  # as probes log
    st.lists(
        st.dictionaries(st.sampled_from(["layer", "extra", "step", 'ü "q", [x]']), SCALARS, max_size=4), max_size=4
    ),
)
HEAD = st.dictionaries(st.sampled_from([*STEP_FIELDS, "through_time", "note"]), NESTED, max_size=12)


@settings(max_examples=100, deadline=None)  # the special floats have their own fixed case below
@given(head=HEAD, layers=LAYERS)
def test_record_lines_write_the_text_of_json_dumps_and_the_csv_module(head, layers):
    record = {**head, "layers": layers}
    assert record_lines(record) == _reference(record)


def test_record_lines_of_a_deep_nets_measured_step_equal_the_general_writers():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(21, len(records.LAYER_FIELDS)))
    layers = [{"layer": i + 1, **dict(zip(records.LAYER_FIELDS, map(float, row)))} for i, row in enumerate(values)]
    layers[3]["grad_snr"], layers[-1]["saturation"], layers[0]["update_ratio"] = None, math.nan, -math.inf
    layers[5]["saturation"] = np.float64(0.25)  # count / size: numpy's float64, as the probes log it
    specials = [math.inf, -math.inf, math.nan, -0.0, 5e-324, 1e16, np.float64("inf"), np.float64("-nan"), None, 0]
    for layer, value in zip(layers[6:], specials):
        layer["delta_norm"] = layer["act_std"] = value
    record = {"step": 10, "loss": 2.302585092994046, "accuracy": math.nan, "grad_norm": math.inf, "nonfinite": 3,
              "layers": layers, "time": 1.25}  # fmt: skip
    assert record_lines(record) == _reference(record)
