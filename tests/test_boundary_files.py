"""Files are read defensively (issue 18, item 4): data, checkpoints and a run's own files must be regular files of
a bounded size (a FIFO, a device, /dev/zero behind a link: one line, at once); an .npz member's shape and dtype are
read from its header before it is inflated (a deflate bomb is refused within TINYGRAD_ACT_MEMORY_LIMIT); corrupt
archives and wrong-typed entries are one line each."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from hostile import (
    TINY,
    call,
    command,
    copy_run,
    refused,
    snapshot,
    succeeded,
    unchanged,
)  # fmt: skip

import tinygrad_act
from tinygrad_act.lab.run.api import Run

pytestmark = pytest.mark.usefixtures("data_cache")


def _bomb(path, rows=4000, columns=2000):
    """An .npz whose x inflates to rows x columns float64 zeros (64 MB by default, 8x the tests' memory limit) from
    a few hundred KB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (rows, columns)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros, left = bytes(2**20), rows * columns * 8
            while left:
                member.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(rows, np.int64))
        archive.writestr("y.npy", buffer.getvalue())
    return path


def _special(tmp_path, kind, name):
    path = tmp_path / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "null":
        path.symlink_to("/dev/null")
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["fifo", "zero", "null", "directory"])
@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_data_that_is_not_a_regular_file_is_one_line_at_once(tmp_path, kind, suffix):
    path = _special(tmp_path, kind, f"data{suffix}")
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **TINY | {"data": str(path)}, out=str(out), timeout=5), path.name)
    assert not out.exists()


def test_a_deflate_bomb_is_refused_from_its_header_within_the_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_MEMORY_LIMIT", "8M")
    path = _bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 2**21
    line = refused(call(tinygrad_act.run, **TINY | {"data": str(path)}, out=str(tmp_path / "run"), timeout=10))
    assert "memory" in line and "bomb.npz" in line


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "member not npy", "member truncated", "empty"])
def test_a_corrupt_data_archive_is_one_line(tmp_path, damage):
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(60, 3)), y=np.arange(60) % 2)
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "not a zip":
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    elif damage == "member not npy":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x.npy", b"hello")
            archive.writestr("y.npy", b"world")
    elif damage == "member truncated":
        with zipfile.ZipFile(path, "w") as archive:
            buffer = io.BytesIO()
            np.save(buffer, rng.normal(size=(60, 3)))
            archive.writestr("x.npy", buffer.getvalue()[:300])
            buffer = io.BytesIO()
            np.save(buffer, np.arange(60) % 2)
            archive.writestr("y.npy", buffer.getvalue())
    else:
        path.write_bytes(b"")
    refused(call(tinygrad_act.run, **TINY | {"data": str(path)}, out=str(tmp_path / "run")), "data.npz")


def _with_checkpoint(path, change):
    checkpoint = path / "checkpoint.npz"
    with np.load(checkpoint) as npz:
        arrays = dict(npz)
    change(arrays)
    checkpoint.unlink()
    np.savez(checkpoint, **arrays)


CHECKPOINT_DAMAGE = {
    "config as a list": lambda a: a.update(config=np.array("[1, 2]")),
    "config not json": lambda a: a.update(config=np.array("{oops")),
    "rng state of 2**200": lambda a: a.update(
        {"stream.rng": np.array(json.dumps({**json.loads(str(a["stream.rng"])), "state": {"state": 2**200, "inc": 1}}))}
    ),
    "rng state not json": lambda a: a.update({"stream.rng": np.array("nope")}),
    "nan probe range": lambda a: a.update({"probe.activation_range": np.array([np.nan, 1.0])}),
    "string step": lambda a: a.update(step=np.array("abc")),
    "fractional step": lambda a: a.update(step=np.array(2.5)),
    "step of two values": lambda a: a.update(step=np.array([1, 2])),
    "no format": lambda a: a.pop("format"),
    "format of text": lambda a: a.update(format=np.array("one")),
    "nan weights": lambda a: a.update(
        {"model.blocks.0.linear.weight": np.full_like(a["model.blocks.0.linear.weight"], np.nan)}
    ),  # fmt: skip
    "pending indices beyond the data": lambda a: a.update({"stream.order": np.array([10**9])}),
    "served as text": lambda a: a.update({"stream.served": np.array("x")}),
    "probe step negative": lambda a: a.update({"probe.step": np.array(-5)}),
    "object array": lambda a: a.update({"probe.step": np.array([{}], dtype=object)}),
    "resumed of fractions": lambda a: a.update(resumed=np.array([1.5])),
    "resumed as a matrix": lambda a: a.update(resumed=np.array([[0]])),
    "resumed from a negative step": lambda a: a.update(resumed=np.array([-1])),
    "resumed after its own step": lambda a: a.update(resumed=np.array([10**6])),
    "resumed as text": lambda a: a.update(resumed=np.array("twice")),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_a_checkpoint_entry_of_the_wrong_type_is_one_line_and_resume_changes_nothing(tmp_path, interrupted, damage):
    path = copy_run(interrupted, tmp_path / "run")
    if damage == "object array":
        checkpoint = path / "checkpoint.npz"
        with np.load(checkpoint) as npz:
            arrays = dict(npz)
        arrays["probe.step"] = np.array([{}], dtype=object)
        np.savez(checkpoint, **arrays)  # pickled: must never be loaded
    else:
        _with_checkpoint(path, CHECKPOINT_DAMAGE[damage])
    before = snapshot(path)
    refused(command("experiment", "--resume", path, "--no-progress"), "checkpoint.npz")
    unchanged(before, path)


@pytest.mark.parametrize("kind", ["fifo", "zero", "directory"])
def test_a_checkpoint_that_is_not_a_regular_file_is_one_line_at_once(tmp_path, interrupted, kind):
    path = copy_run(interrupted, tmp_path / "run")
    (path / "checkpoint.npz").unlink()
    _special(path, kind, "checkpoint.npz")
    before = snapshot(path)
    refused(command("experiment", "--resume", path, "--no-progress", timeout=5), "checkpoint.npz")
    unchanged(before, path)


def test_a_checkpoint_bomb_is_refused_within_the_memory_limit(tmp_path, interrupted, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_MEMORY_LIMIT", "8M")
    path = copy_run(interrupted, tmp_path / "run")
    with np.load(path / "checkpoint.npz") as npz:
        arrays = dict(npz)
    (path / "checkpoint.npz").unlink()
    _bomb(path / "checkpoint.npz")
    with zipfile.ZipFile(path / "checkpoint.npz", "a") as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    before = snapshot(path)
    refused(command("experiment", "--resume", path, "--no-progress", timeout=10), "checkpoint.npz", "memory")
    unchanged(before, path)


@pytest.mark.parametrize("name", ["config.json", "summary.json", "metrics.jsonl"])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_run_file_that_is_not_a_regular_file_is_one_line_at_once(tmp_path, interrupted, name, kind):
    path = copy_run(interrupted, tmp_path / "run")
    (path / name).unlink()
    _special(path, kind, name)
    for outcome in (command("show", path, timeout=5), command("compare", path, "--out", tmp_path / "c.png", timeout=5),
                    call(Run.load, path, timeout=5), command("experiment", "--resume", path, timeout=5)):  # fmt: skip
        refused(outcome)


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe not utf-8\n", b"[" * 100000 + b"\n", b'{"step": 0}\n[1, 2]\n{"step": 1}\n', b"\x00" * 64 + b"\n"],
    ids=["not utf-8", "nested 100000 deep", "a list among records", "zeros"],
)
def test_a_damaged_metrics_jsonl_is_one_line(tmp_path, interrupted, content):
    path = copy_run(interrupted, tmp_path / "run")
    (path / "metrics.jsonl").write_bytes(content)
    for outcome in (command("show", path), call(Run.load, path), command("experiment", "--resume", path)):
        refused(outcome, "metrics.jsonl")


def test_a_config_json_nested_deep_is_one_line(tmp_path, interrupted):
    path = copy_run(interrupted, tmp_path / "run")
    (path / "config.json").write_text("[" * 100000 + "]" * 100000)
    refused(command("show", path), "config.json")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_plugin_or_sweep_config_that_is_not_a_regular_file_is_one_line_at_once(tmp_path, kind):
    plugin = _special(tmp_path, kind, "mine.py")
    refused(command("list", "--plugin", plugin, timeout=5), "mine.py")
    config = _special(tmp_path, kind, "grid.toml") if kind == "fifo" else _special(tmp_path, kind, "zero.toml")
    refused(command("sweep", config, "--out", tmp_path / "sweep", timeout=5), config.name)


def test_a_data_cache_file_that_is_a_fifo_is_regenerated_not_waited_for(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    out = tmp_path / "first"
    succeeded(call(tinygrad_act.run, **TINY, out=str(out)))
    (cached,) = (cache / "data").glob("*.npz")
    cached.unlink()
    os.mkfifo(cached)
    succeeded(call(tinygrad_act.run, **TINY, out=str(tmp_path / "second"), timeout=10))
