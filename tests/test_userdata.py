"""Your data: DATA=path.npz / path.csv (and arrays through the same checks), split, standardized, recorded."""

import hashlib
import json

import hostile
import numpy as np
import pytest

from tinygrad_act.common import reads
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab import data
from tinygrad_act.lab.data import userdata
from tinygrad_act.lab.run.config import Config

TINY = ["experiment", "--depth", "3", "--width", "8", "--steps", "5", "--batch-size", "16", "--no-progress",
        "--no-figures"]  # fmt: skip


def _arrays(n=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -2.0, 1.0]
    return x, np.arange(n) % classes


def _cli(args, cwd, monkeypatch) -> hostile.Outcome:
    """The command line in-process (tests/hostile.py) in ``cwd``: its exit ``code`` and its stderr, ``message``."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(cwd / "cache"))
    return hostile.command(*args)


def _write_csv(path, x, y, header="a,b,c,d,label"):
    lines = [header] + [",".join(f"{v!r}" for v in row) + f",{label}" for row, label in zip(x.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")


def test_a_run_on_your_npz_and_csv_records_the_path_and_the_files_sha256(tmp_path, monkeypatch):
    x, y = _arrays()
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    _write_csv(tmp_path / "mine.csv", x, y)
    for name in ("mine.npz", "mine.csv"):
        out = tmp_path / f"run-{name}"
        result = _cli([*TINY, "--data", name, "--out", str(out)], tmp_path, monkeypatch)
        assert result.code == 0, result.message
        config = json.loads((out / "config.json").read_text())
        recorded = config["dataset"]["params"]
        assert recorded["path"] == str((tmp_path / name).resolve())
        assert recorded["sha256"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert (config["dataset"]["train"], config["dataset"]["test"], config["dataset"]["classes"]) == (48, 12, 3)
        assert len((out / "metrics.jsonl").read_text().splitlines()) >= 1


def test_the_npz_and_the_csv_of_the_same_numbers_give_the_same_dataset(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    _write_csv(tmp_path / "d.csv", x, y)
    a, b = data.load(str(tmp_path / "d.npz")), data.load(str(tmp_path / "d.csv"))
    for split in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))


def test_the_test_split_is_stratified_and_the_same_for_the_same_seed(tmp_path):
    x, y = _arrays(n=103, classes=4)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    first, again, other = (data.load(str(tmp_path / "d.npz"), seed=s) for s in (0, 0, 1))
    counts = np.bincount(y)
    assert np.bincount(first.y_test).tolist() == np.round(counts * 0.2).astype(int).tolist()
    assert np.bincount(first.y_train).tolist() == (counts - np.round(counts * 0.2)).astype(int).tolist()
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert not np.array_equal(first.x_test, other.x_test)  # the seed draws the split
    # each example lands in exactly one split: the rows of both splits, standardized back, are the file's rows
    assert len(first.y_train) + len(first.y_test) == len(y)


def test_standardization_uses_the_train_statistics_only(tmp_path):
    x, y = _arrays()
    x_test = x[:9] * 100.0 + 1000.0  # a test split far from the train one: its statistics must not be used
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=y[:9])
    ds = data.load(str(tmp_path / "d.npz"))
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_test, (x_test - x.mean(axis=0)) / x.std(axis=0))


def test_any_integer_labels_become_classes_0_to_c_minus_1_in_sorted_order(tmp_path):
    x, y = _arrays(classes=2)
    np.savez(tmp_path / "d.npz", x=x, y=np.where(y == 0, -1, 7))
    ds = data.load(str(tmp_path / "d.npz"))
    assert ds.num_classes == 2 and ds.params["labels"] == [-1, 7]
    assert sorted(set(ds.y_train.tolist())) == [0, 1] and ds.y_train.dtype == np.int64


def test_config_validate_checks_the_file_and_counts_its_size_in_the_memory_estimate(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    shape = data.check(str(tmp_path / "d.npz"))
    assert (shape.n_train, shape.n_test, shape.features, shape.classes) == (48, 12, 4, 3)
    config = Config(data=str(tmp_path / "d.npz"), batch_size=49, depth=3, width=8)
    with pytest.raises(UsageError, match="larger than the training split"):
        config.validate()
    assert Config(data=str(tmp_path / "d.npz"), batch_size=48).memory_estimate(shape)[1]["data"] > 0


def _malformed(tmp_path):
    """name -> (file name, writer, words the one line must hold)."""
    x, y = _arrays()

    def npz(**arrays):
        return lambda path: np.savez(path, **arrays)

    def text(content):
        return lambda path: path.write_text(content)

    nan_x, inf_x = x.copy(), x.copy()
    nan_x[3, 1], inf_x[5, 0] = np.nan, np.inf
    return {
        "missing y": ("d.npz", npz(x=x), ["no array 'y'"]),
        "only x_test": ("d.npz", npz(x=x, y=y, x_test=x), ["x_test", "y_test"]),
        "x is 1-D": ("d.npz", npz(x=x[:, 0], y=y), ["x has shape (60,)"]),
        "y too short": ("d.npz", npz(x=x, y=y[:-1]), ["y has shape (59,)"]),
        "features differ": ("d.npz", npz(x=x, y=y, x_test=x[:, :2], y_test=y), ["x_test has 2"]),
        "strings": ("d.npz", npz(x=x.astype(str), y=y), ["x holds", "numeric"]),
        "nan": ("d.npz", npz(x=nan_x, y=y), ["non-finite", "nan"]),
        "inf": ("d.npz", npz(x=inf_x, y=y), ["non-finite", "inf"]),
        "fractional labels": ("d.npz", npz(x=x, y=y + 0.5), ["labels must be integers"]),
        "one class": ("d.npz", npz(x=x, y=np.zeros(60, int)), ["1 class", "at least 2"]),
        "class missing from test": ("d.npz", npz(x=x, y=y, x_test=x[:5], y_test=np.zeros(5, int)),
                                    ["missing from y_test"]),
        "class of one example": ("d.npz", npz(x=x, y=np.r_[y[:-1], 9]), ["class 9 has 1 example"]),
        "pickled objects": ("d.npz", npz(x=np.array([{"a": 1}] * 60, dtype=object), y=y), ["pickled", "never loaded"]),
        "not a zip": ("d.npz", text("hello"), ["not a readable .npz", "not a zip file"]),
        "corrupt zip": ("d.npz", lambda path: path.write_bytes(b"PK\x03\x04broken"), ["not a readable .npz"]),
        "csv without label": ("d.csv", text("a,b\n1,2\n"), ["no column named 'label'", "a, b"]),
        "csv non-numeric": ("d.csv", text("a,label\n1,0\nxyz,1\n"), ["line 3", "'xyz' is not a number"]),
        "csv ragged": ("d.csv", text("a,label\n1,0\n2\n"), ["line 3", "1 fields"]),
        "csv empty": ("d.csv", text(""), ["empty"]),
        "not utf-8": ("d.csv", lambda path: path.write_bytes(b"a,label\n\xff\xfe,1\n"), ["UTF-8"]),
        "a directory": ("d.npz", lambda path: path.mkdir(), ["is a directory"]),
        "missing file": ("d.npz", lambda path: None, ["does not exist"]),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_malformed(None)))
def test_a_malformed_file_is_one_line_naming_it_exit_2_and_no_run_directory(tmp_path, case, monkeypatch):
    name, write, words = _malformed(tmp_path)[case]
    write(tmp_path / name)
    result = _cli([*TINY, "--data", name, "--out", str(tmp_path / "run")], tmp_path, monkeypatch)
    assert result.code == 2, result.message
    lines = result.message.splitlines()
    assert len(lines) == 1 and f"'{name}'" in lines[0], result.message
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)

    def refuse(path, *args, **kwargs):  # as chmod 0 would, for a user other than root (the tests may run as root)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(reads.os, "open", refuse)
    with pytest.raises(UsageError, match="cannot read .*d.npz: permission denied"):
        data.check(str(tmp_path / "d.npz"))


def test_arrays_are_checked_like_a_file():
    x, y = _arrays()
    with pytest.raises(UsageError, match="dataset arrays: y has shape"):
        userdata.register_arrays((x, y[:3]))
    with pytest.raises(UsageError, match=r"\(x, y\) or \(x, y, x_test, y_test\)"):
        userdata.register_arrays((x, y, x))


def test_a_builtin_name_is_never_taken_for_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spirals").mkdir()
    assert data.check("spirals:n=200").n_train == 160
