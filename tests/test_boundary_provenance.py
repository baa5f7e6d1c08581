"""Provenance (issue 18, item 2): everything a run depends on is fingerprinted in config.json (its data, the arrays
given to run(), the plug-in files), and checked wherever the run is reused: RESUME refuses changed inputs in one
line naming the file and both hashes; a sweep rerun redoes the runs whose inputs changed."""

import json
import os
import textwrap

import numpy as np
import pytest
from hostile import TINY, TINY_ARGS, call, command, interrupted_run, refused, snapshot, succeeded, unchanged

import tinygrad_act
from tinygrad_act.lab.data import datasets
from tinygrad_act.lab.run import experiment as lifecycle

pytestmark = pytest.mark.usefixtures("data_cache")


def _data(path, seed=0, n=60):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    return path


def _resume(path):
    return command("experiment", "--resume", path, "--no-progress")


def _config(path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_config_records_the_data_path_as_typed_and_absolute_with_its_sha256(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "mine.npz")
    path = interrupted_run(tmp_path / "run", data="mine.npz")
    config = _config(path)
    assert config["data"] == "mine.npz"
    assert config["dataset"]["params"]["path"] == str(tmp_path / "mine.npz")
    assert len(config["dataset"]["sha256"]) == 64


@pytest.mark.parametrize("change", ["rewritten", "csv rewritten", "link retargeted"])
def test_resume_refuses_changed_data_naming_the_file_and_both_hashes(tmp_path, monkeypatch, change):
    monkeypatch.chdir(tmp_path)
    if change == "csv rewritten":
        data = tmp_path / "mine.csv"
        data.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(60)))
    elif change == "link retargeted":
        data = tmp_path / "link.npz"
        data.symlink_to(_data(tmp_path / "first.npz"))
    else:
        data = _data(tmp_path / "mine.npz")
    path = interrupted_run(tmp_path / "run", data=data.name)
    before_hash = _config(path)["dataset"]["sha256"]
    if change == "csv rewritten":
        data.write_text(data.read_text().replace("\n1,", "\n2,", 1))
    elif change == "link retargeted":
        data.unlink()
        data.symlink_to(_data(tmp_path / "second.npz", seed=1))
    else:
        _data(data, seed=1)
    before = snapshot(path)
    line = refused(_resume(path), data.name, before_hash[:16])
    assert "changed" in line
    unchanged(before, path)


def test_resume_from_another_directory_reads_the_data_the_run_was_made_with(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "mine.npz")
    path = interrupted_run(tmp_path / "run", data="mine.npz")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _data(elsewhere / "mine.npz", seed=5)  # same name, other data: must not be picked up
    monkeypatch.chdir(elsewhere)
    succeeded(_resume(path))
    assert json.loads((path / "summary.json").read_text())["status"] == "completed"


def test_resume_when_the_data_file_is_gone_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _data(tmp_path / "mine.npz")
    path = interrupted_run(tmp_path / "run", data="mine.npz")
    data.unlink()
    before = snapshot(path)
    refused(_resume(path), "mine.npz")
    unchanged(before, path)


def test_resume_refuses_built_in_data_that_no_longer_matches_its_fingerprint(tmp_path, monkeypatch):
    path = interrupted_run(tmp_path / "run")
    (cached,) = (tmp_path / "cache" / "data").glob("*.npz")
    with np.load(cached) as npz:
        arrays = dict(npz)
    arrays["x_train"] = arrays["x_train"][::-1].copy()  # same key, other arrays: a cache someone rewrote
    np.savez(cached, **arrays)
    before = snapshot(path)
    refused(_resume(path), "changed")
    unchanged(before, path)


def test_a_checkpoint_of_a_run_on_other_data_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _data(tmp_path / "a" / "mine.npz")
    _data(tmp_path / "b" / "mine.npz", seed=3)
    monkeypatch.chdir(tmp_path / "a")
    first = interrupted_run(tmp_path / "first", data="mine.npz")
    monkeypatch.chdir(tmp_path / "b")
    second = interrupted_run(tmp_path / "second", data="mine.npz")  # the same settings, as typed
    (second / "checkpoint.npz").write_bytes((first / "checkpoint.npz").read_bytes())
    before = snapshot(second)
    refused(_resume(second), "checkpoint.npz")
    unchanged(before, second)


PLUGIN = """
import numpy as np
from tinygrad_act import activations
activations.register("bent", forward=lambda x: np.tanh({k} * x), derivative=lambda x: {k} / np.cosh({k} * x) ** 2)
"""


def test_config_records_the_plug_in_files_and_resume_refuses_a_changed_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TINYGRAD_ACT_PLUGINS", raising=False)
    plugin = tmp_path / "bent_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN.format(k=1.0)))
    out = tmp_path / "run"
    original = lifecycle._train_step

    def stop_at_two(*args):
        if args[8] == 2:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(lifecycle, "_train_step", stop_at_two)
    outcome = command("experiment", *TINY_ARGS, "--act", "bent", "--plugin", plugin, "--out", out)
    assert outcome.code == 130, outcome.message
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    recorded = _config(out)["plugins"]
    assert [entry["path"] for entry in recorded] == [str(plugin)] and len(recorded[0]["sha256"]) == 64
    plugin.write_text(textwrap.dedent(PLUGIN.format(k=2.0)))
    before = snapshot(out)
    refused(command("experiment", "--resume", out, "--no-progress", "--plugin", plugin), plugin.name)
    unchanged(before, out)
    os.environ.pop("TINYGRAD_ACT_PLUGINS", None)


SWEEP = ["sweep", "--depths", "2", "--width", "4", "--steps", "2", "--batch-size", "8", "--no-progress"]


@pytest.mark.usefixtures("no_sweep_figures")  # the runs' data is the point, not the sweep's pictures
def test_a_sweep_rerun_redoes_the_runs_whose_data_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _data(tmp_path / "mine.npz")
    root = tmp_path / "sweep"
    succeeded(command(*SWEEP, "--data", "mine.npz", "--out", root))
    (run,) = (root / "runs").iterdir()
    first = _config(run)["dataset"]["sha256"]
    _data(data, seed=1)
    succeeded(command(*SWEEP, "--data", "mine.npz", "--out", root))
    assert _config(run)["dataset"]["sha256"] != first


def test_every_dataset_has_a_fingerprint_of_what_it_was_made_from():
    a = datasets.load("spirals:n=60", seed=0)
    b = datasets.load("spirals:n=60", seed=1)
    assert len(a.sha256) == 64 and a.sha256 != b.sha256
    assert datasets.load("spirals:n=60", seed=0).sha256 == a.sha256


def test_arrays_given_to_run_are_recorded_by_shape_and_sha256(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    run = succeeded(call(tinygrad_act.run, **TINY | {"data": (x, (x[:, 0] > 0).astype(int))}, out=str(tmp_path / "r")))
    dataset = run.config["dataset"]
    assert dataset["params"]["shapes"]["x"] == [60, 3] and len(dataset["sha256"]) == 64
