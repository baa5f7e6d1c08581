"""--tensorboard / TENSORBOARD=1: event files in RUN_DIR/tensorboard/, read back by TensorBoard itself
(its EventAccumulator), equal to metrics.jsonl; without tensorboardX, one line saying how to install it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_act import makeargs
from tinygrad_act.common import files
from tinygrad_act.common.errors import UsageError
from tinygrad_act.common.files import read_records
from tinygrad_act.lab.run.experiment import Config, run
from tinygrad_act.lab.stats import first_last_ratio

pytest.importorskip("tensorboardX", reason="the test extra installs tensorboardX")  # make test installs it
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

DEPTH, WIDTH, BATCH = 3, 8, 16


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


def _run(out, **overrides) -> dict:
    values = dict(depth=DEPTH, width=WIDTH, act="tanh", steps=9, batch_size=BATCH, data="spirals:n=200",
                  log_every=2, eval_every=4, figures=False, tensorboard=True, out=str(out))  # fmt: skip
    values.update(overrides)
    return run(Config(**values), force=True, progress=False)


def _events(run_dir):
    """TensorBoard's own reader over RUN_DIR/tensorboard/, everything loaded (no sampling)."""
    everything = {"scalars": 0, "histograms": 0}
    accumulator = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance=everything)
    accumulator.Reload()
    return accumulator


def _scalar(accumulator, tag) -> dict[int, float]:
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def test_tensorboard_scalars_equal_the_metrics_jsonl_values(tmp_path):
    _run(tmp_path / "run")
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    events = _events(tmp_path / "run")
    layers = ["1", "2", "3", "out"]
    expected = {"train/loss": "loss", "train/accuracy": "accuracy", "gradients/grad_norm": "grad_norm"}
    for tag, key in expected.items():  # every measured step, as float32 (TensorBoard's scalar type)
        assert _scalar(events, tag) == {r["step"]: np.float32(r[key]) for r in records}, tag
    evaluated = [r for r in records if "test_accuracy" in r]
    assert [r["step"] for r in evaluated] == [0, 4, 8]
    for tag, key in {"test/loss": "test_loss", "test/accuracy": "test_accuracy"}.items():
        assert _scalar(events, tag) == {r["step"]: np.float32(r[key]) for r in evaluated}, tag
    assert _scalar(events, "gradients/r") == {r["step"]: np.float32(first_last_ratio(r)) for r in records}
    for key in ("delta_norm", "weight_grad_norm", "update_ratio", "grad_snr"):
        for index, name in enumerate(layers):
            want = {r["step"]: np.float32(r["layers"][index][key]) for r in records}
            assert _scalar(events, f"{key}/{name}") == want, f"{key}/{name}"


def test_tensorboard_histograms_per_layer_at_the_first_and_last_measured_step(tmp_path):
    _run(tmp_path / "run")
    events = _events(tmp_path / "run")
    assert sorted(events.Tags()["histograms"]) == [
        *(f"activations/{n}" for n in ("1", "2", "3")),
        *(f"delta_log10/{n}" for n in ("1", "2", "3", "out")),
    ]
    hidden = events.Histograms("activations/2")
    assert [h.step for h in hidden] == [0, 8]
    assert all(h.histogram_value.num == BATCH * WIDTH for h in hidden)  # every unit of the batch, counted once
    output = events.Histograms("delta_log10/out")
    assert all(h.histogram_value.num == BATCH * 3 for h in output)  # spirals: 3 classes


def test_tensorboard_leaves_metrics_jsonl_unchanged(tmp_path):
    _run(tmp_path / "with")
    _run(tmp_path / "without", tensorboard=False)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in read_records(tmp_path / "with" / "metrics.jsonl")]
    plain = [{k: v for k, v in r.items() if k != "time"} for r in read_records(tmp_path / "without" / "metrics.jsonl")]
    assert strip == plain
    assert not (tmp_path / "without" / "tensorboard").exists()


def test_forced_rerun_replaces_the_previous_event_files(tmp_path):
    _run(tmp_path / "run")
    (old,) = (tmp_path / "run" / "tensorboard").iterdir()
    old.rename(old.with_name("events.out.tfevents.1000000000.earlier"))  # event files are named by the second
    owned = files.Owned.read(tmp_path / "run")  # as if the earlier run had written it under that name
    owned.files = [f"tensorboard/{old.with_name('events.out.tfevents.1000000000.earlier').name}" if name ==
                   f"tensorboard/{old.name}" else name for name in owned.files]  # fmt: skip
    owned.save()
    _run(tmp_path / "run", steps=5)
    assert len(list((tmp_path / "run" / "tensorboard").iterdir())) == 1
    assert max(_scalar(_events(tmp_path / "run"), "train/loss")) == 4


def test_tensorboard_make_switch_becomes_the_option():
    assert "--tensorboard" in makeargs.arguments("experiment", {"TENSORBOARD": "1"})
    assert "--tensorboard" not in makeargs.arguments("experiment", {"TENSORBOARD": "0"})
    with pytest.raises(UsageError, match="TENSORBOARD"):
        makeargs.arguments("experiment", {"TENSORBOARD": "maybe"})


def test_tensorboard_without_tensorboardx_is_one_line_saying_how_to_install(tmp_path):
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "tensorboardX.py").write_text("raise ImportError('tensorboardX hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tinygrad_act", "experiment", "--depth", "3", "--width", "8", "--steps", "5",
         "--data", "spirals:n=200", "--tensorboard", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "tensorboardX" in lines[0] and "pip install" in lines[0], result.stderr
    assert not out.exists()  # refused before anything is written
