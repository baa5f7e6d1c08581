"""Data sanity (issue 18, item 5): labels survive their conversion, standardization that overflows or underflows is
refused, a CSV names its label once, masked arrays are refused; every defect is one line before any run starts."""

import json

import numpy as np
import pytest
from hostile import TINY, call, copy_run, refused, succeeded

import tinygrad_act
from tinygrad_act.lab.data import userdata

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3))
Y = (X[:, 0] > 0).astype(np.int64)

pytestmark = pytest.mark.usefixtures("data_cache")


BAD = {
    "float labels beyond int64": (X, np.where(Y == 1, 1e20, 2e20)),
    "negative float labels beyond int64": (X, np.where(Y == 1, -1e19, 0.0)),
    "uint64 labels beyond int64": (X, np.where(Y == 1, 2**63 + 1, 2**63 + 3).astype(np.uint64)),
    "inputs that overflow": (X * 1e200, Y),
    "one feature that overflows": (np.column_stack([X[:, :2], X[:, 2] * 1e307]), Y),
    "inputs that underflow": (X * 1e-200, Y),
    "a feature that varies below float64 resolution": (np.column_stack([X[:, :2], 1 + X[:, 2] * 1e-13]), Y),
    "masked inputs": (np.ma.masked_array(X, mask=X > 2), Y),
    "masked labels": (X, np.ma.masked_array(Y, mask=np.arange(60) == 3)),
    "ragged inputs": ([[1.0, 2.0], [3.0]] * 30, Y),
    "object inputs": (X.astype(object), Y),
    "nan labels": (X, np.where(Y == 1, np.nan, 0.0)),
    "complex inputs": (X.astype(complex), Y),
    "test split that overflows float32 once standardized": (X, Y, X * 1e39, Y),
}


@pytest.mark.parametrize("case", list(BAD))
def test_data_that_cannot_be_used_as_given_is_one_line_before_any_run_directory(tmp_path, case):
    data = BAD[case]
    settings = {"dtype": "float32"} if "float32" in case else {}
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **{**TINY, **settings, "data": data}, out=str(out)))
    assert not out.exists()


def test_a_csv_with_two_label_columns_is_refused(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("a,label,label\n" + "".join(f"{i},{i % 2},{(i + 1) % 2}\n" for i in range(60)))
    refused(call(tinygrad_act.run, **(TINY | {"data": str(path)}), out=str(tmp_path / "run")), "label", "two.csv")


@pytest.mark.parametrize(
    "labels",
    [np.array([5, 7], np.uint64), np.array([2**62, -(2**62)]), np.array([-1.0, 1.0]), np.array([True, False])],
    ids=["uint64", "int64 extremes", "float -1/1", "bool"],
)
def test_labels_that_fit_are_kept_exactly_in_config_json(tmp_path, labels):
    y = np.where(Y == 1, labels[0], labels[1])
    run = succeeded(call(tinygrad_act.run, **(TINY | {"data": (X, y)}), out=str(tmp_path / "run")))
    recorded = run.config["dataset"]["params"]["labels"]
    assert recorded == sorted(int(v) for v in labels)
    assert all(type(v) is int for v in recorded)


def test_a_masked_array_without_masked_entries_is_plain_data(tmp_path):
    run = succeeded(call(tinygrad_act.run, **(TINY | {"data": (np.ma.masked_array(X), Y)}), out=str(tmp_path / "run")))
    assert run.summary["status"] == "completed"


def test_a_constant_feature_is_still_kept_as_a_zero_column():
    raw = (np.column_stack([X, np.full(60, 1e300)]), Y)
    spec = userdata.register_arrays(raw)
    dataset = userdata.load(spec)
    assert np.all(dataset.x_train[:, 3] == 0) and np.all(np.isfinite(dataset.x_train))


def _standardization(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    return config, config["dataset"]["params"]


RECORD_DAMAGE = {  # config.json's record of the data, as Run.predict and Run.evaluate read it back
    "std of zero": ("std", lambda p: p["standardization"].update(std=[0.0, *p["standardization"]["std"][1:]])),
    "std as text": ("std", lambda p: p["standardization"].update(std="1")),
    "a mean too short": ("mean", lambda p: p["standardization"].update(mean=p["standardization"]["mean"][:1])),
    "a mean of text": ("mean", lambda p: p["standardization"].update(mean=["a", "b", "c"])),
    "standardization as a list": ("standardization", lambda p: p.update(standardization=[1.0])),
    "labels out of order": ("labels", lambda p: p.update(labels=p["labels"][::-1])),
    "labels of text": ("labels", lambda p: p.update(labels=["a", "b"])),
    "a label too many": ("labels", lambda p: p.update(labels=[*p["labels"], 99])),
}


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    """A finished TINY run on X with the labels 7 and -1, made once for the module; each test copies it first."""
    path = tmp_path_factory.mktemp("made") / "r"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYGRAD_ACT_CACHE", str(path.parent / "cache"))  # data_cache, for a module's fixture
        succeeded(call(tinygrad_act.run, **(TINY | {"data": (X, np.where(Y == 1, 7, -1))}), out=str(path)))
    return path


@pytest.mark.parametrize("damage", list(RECORD_DAMAGE))
def test_a_malformed_standardization_or_labels_in_config_json_is_one_line_for_predict(tmp_path, labelled_run, damage):
    path = copy_run(labelled_run, tmp_path / "r")
    assert succeeded(call(tinygrad_act.Run.load, path)).predict(X[:3]).shape == (3,)  # whole, the copy predicts
    config, params = _standardization(path)
    field, change = RECORD_DAMAGE[damage]
    change(params)
    (path / "config.json").write_text(json.dumps(config))
    loaded = succeeded(call(tinygrad_act.Run.load, path))  # reading the run needs no data record
    refused(call(loaded.predict, X[:3]), "config.json", field)
    refused(call(loaded.evaluate, X[:3], np.where(Y[:3] == 1, 7, -1)), "config.json", field)
