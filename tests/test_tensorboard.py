"""--tensorboard / TENSORBOARD=1: event files in RUN_DIR/tensorboard/, read back by TensorBoard itself
(its EventAccumulator), equal to metrics.jsonl: the why quantities per layer, histograms at measured steps bounded
by --hist-every, the settings and the verdict as text, the HParams entry; without tensorboardX, one line saying how
to install it."""

import importlib.util
import shutil
import sys

import hostile
import numpy as np
import pytest

from tinygrad_act import makeargs
from tinygrad_act.common import files
from tinygrad_act.common.errors import UsageError
from tinygrad_act.common.files import read_records
from tinygrad_act.lab.run.experiment import Config, run
from tinygrad_act.lab.stats import first_last_ratio

# make test installs tensorboardX; found, not imported here: it imports PyTorch (conftest.py's USES_TORCH)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is None, reason="the test extra installs it")

DEPTH, WIDTH, BATCH = 3, 8, 16


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


def _run(out, **overrides) -> dict:
    values = dict(depth=DEPTH, width=WIDTH, act="tanh", steps=9, batch_size=BATCH, data="spirals:n=200",
                  log_every=2, eval_every=4, figures=False, tensorboard=True, out=str(out))  # fmt: skip
    values.update(overrides)
    return run(Config(**values), force=True, progress=False)


@pytest.fixture(scope="module")
def tanh_run(tmp_path_factory):
    """(directory, summary) of the default ``_run`` (tanh, 9 steps), made once for the module; read only."""
    path = tmp_path_factory.mktemp("made") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYGRAD_ACT_CACHE", str(path.parent / "cache"))  # data_cache, for a module's fixture
        return path, _run(path)


def _reader(directory, **options):
    """TensorBoard's own reader over ``directory``, loaded; imported here, not at collection, where both pytest
    workers imported it (0.4 s each) for the one that runs these tests."""
    reader = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    accumulator = reader.EventAccumulator(str(directory), **options)
    accumulator.Reload()
    return accumulator


def _events(run_dir):
    """TensorBoard's own reader over RUN_DIR/tensorboard/, everything loaded (no sampling)."""
    return _reader(run_dir / "tensorboard", size_guidance={"scalars": 0, "histograms": 0})


def _scalar(accumulator, tag) -> dict[int, float]:
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def test_tensorboard_scalars_equal_the_metrics_jsonl_values(tanh_run):
    path, _ = tanh_run
    records = read_records(path / "metrics.jsonl")
    events = _events(path)
    layers = ["1", "2", "3", "out"]
    expected = {"minibatch/loss": "loss", "minibatch/accuracy": "accuracy", "gradients/grad_norm": "grad_norm"}
    for tag, key in expected.items():  # every measured step, as float32 (TensorBoard's scalar type)
        assert _scalar(events, tag) == {r["step"]: np.float32(r[key]) for r in records}, tag
    evaluated = [r for r in records if "test_accuracy" in r]
    assert [r["step"] for r in evaluated] == [0, 4, 8]
    whole = {"test/loss": "test_loss", "test/accuracy": "test_accuracy", "train/loss": "train_loss",
             "train/accuracy": "train_accuracy"}  # fmt: skip
    for tag, key in whole.items():  # the whole split, on evaluation steps: not the minibatch's numbers
        assert _scalar(events, tag) == {r["step"]: np.float32(r[key]) for r in evaluated}, tag
    assert _scalar(events, "train/loss") != {r["step"]: np.float32(r["loss"]) for r in evaluated}
    assert _scalar(events, "gradients/r") == {r["step"]: np.float32(first_last_ratio(r)) for r in records}
    for key in ("delta_norm", "weight_grad_norm", "update_ratio", "grad_snr", "weight_gain"):
        for index, name in enumerate(layers):
            want = {r["step"]: np.float32(r["layers"][index][key]) for r in records}
            assert _scalar(events, f"{key}/{name}") == want, f"{key}/{name}"


def test_the_why_quantities_are_scalars_per_hidden_layer(tmp_path):
    _run(tmp_path / "run", act="relu")
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    events = _events(tmp_path / "run")
    for index, name in enumerate(["1", "2", "3"]):
        layers = {r["step"]: r["layers"][index] for r in records}
        for key in ("activation_gain", "saturation", "inactive_fraction", "dead_fraction"):
            assert _scalar(events, f"{key}/{name}") == {s: np.float32(layer[key]) for s, layer in layers.items()}
        product = {s: np.float32(layer["weight_gain"] * layer["activation_gain"]) for s, layer in layers.items()}
        assert _scalar(events, f"gain_product/{name}") == product
    assert "gain_product/out" not in events.Tags()["scalars"]  # no activation after the output layer


def test_histograms_of_weights_gradients_activations_and_deltas_at_measured_steps_bounded_by_hist_every(tmp_path):
    _run(tmp_path / "run", steps=25, hist_every=5)  # measured: 0, 2, 4, ...; evaluated 0, 4, 8, ...; last 24
    events = _events(tmp_path / "run")
    assert sorted(events.Tags()["histograms"]) == sorted(
        [*(f"{kind}/{n}" for kind in ("weights", "weight_grads", "delta_log10") for n in ("1", "2", "3", "out")),
         *(f"activations/{n}" for n in ("1", "2", "3"))]
    )  # fmt: skip
    for tag in events.Tags()["histograms"]:  # the first measured step of every 5, and the last step
        assert [h.step for h in events.Histograms(tag)] == [0, 6, 10, 16, 20, 24], tag
    hidden = events.Histograms("activations/2")
    assert all(h.histogram_value.num == BATCH * WIDTH for h in hidden)  # every unit of the batch, counted once
    output = events.Histograms("delta_log10/out")
    assert all(h.histogram_value.num == BATCH * 3 for h in output)  # spirals: 3 classes
    weights = events.Histograms("weights/2")
    assert all(h.histogram_value.num == WIDTH * WIDTH for h in weights)
    _run(tmp_path / "every", steps=9, hist_every=1)  # hist_every 1: every measured step
    every = _events(tmp_path / "every")
    assert [h.step for h in every.Histograms("weights/1")] == [0, 2, 4, 6, 8]


def test_the_settings_and_the_verdict_are_text_and_the_run_is_an_hparams_session(tanh_run):
    path, summary = tanh_run
    events = _events(path)
    texts = {tag.split("/")[0]: events.Tensors(tag) for tag in events.Tags()["tensors"]}
    config = texts["config"][0].tensor_proto.string_val[0].decode()
    assert "| act | tanh |" in config and "| depth | 3 |" in config
    verdict = texts["verdict"][0].tensor_proto.string_val[0].decode()
    assert f"{summary['verdict']}: layer 1 receives" in verdict and texts["verdict"][0].step == 8
    hparams = _reader(path / "tensorboard" / "hparams")
    assert set(hparams.PluginTagToContent("hparams")) == {
        "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"
    }  # fmt: skip
    metrics = {tag: hparams.Scalars(tag)[0].value for tag in hparams.Tags()["scalars"]}
    assert metrics["hparams/test_accuracy"] == np.float32(summary["test_accuracy"])
    assert metrics["hparams/log10_r_init"] == np.float32(np.log10(summary["ratio_init"]))


def test_make_sweep_passes_tensorboard_to_every_run():
    assert "--tensorboard" in makeargs.arguments("sweep", {"ACTS": "relu", "TENSORBOARD": "yes"})


def test_tensorboard_leaves_metrics_jsonl_unchanged(tmp_path, tanh_run):
    _run(tmp_path / "without", tensorboard=False)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in read_records(tanh_run[0] / "metrics.jsonl")]
    plain = [{k: v for k, v in r.items() if k != "time"} for r in read_records(tmp_path / "without" / "metrics.jsonl")]
    assert strip == plain
    assert not (tmp_path / "without" / "tensorboard").exists()


def test_forced_rerun_replaces_the_previous_event_files(tmp_path, tanh_run):
    shutil.copytree(tanh_run[0], tmp_path / "run", symlinks=True)
    owned = files.Owned.read(tmp_path / "run")  # as if the earlier run had written them under those names
    for old in list((tmp_path / "run" / "tensorboard").rglob("events.*")):  # event files are named by the second
        earlier = old.with_name(old.name.replace("events.out.tfevents.", "events.out.tfevents.1000000000."))
        old.rename(earlier)
        renamed = {old.relative_to(tmp_path / "run").as_posix(): earlier.relative_to(tmp_path / "run").as_posix()}
        owned.files = [renamed.get(name, name) for name in owned.files]
    owned.save()
    _run(tmp_path / "run", steps=5)
    # the HParams session's file in tensorboard/hparams/ too: one session per run, never the earlier run's
    assert not list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.1000000000.*"))
    assert len(list((tmp_path / "run" / "tensorboard" / "hparams").glob("events.*"))) == 1
    assert max(_scalar(_events(tmp_path / "run"), "minibatch/loss")) == 4


def test_tensorboard_make_switch_becomes_the_option():
    assert "--tensorboard" in makeargs.arguments("experiment", {"TENSORBOARD": "1"})
    assert "--tensorboard" not in makeargs.arguments("experiment", {"TENSORBOARD": "0"})
    with pytest.raises(UsageError, match="TENSORBOARD"):
        makeargs.arguments("experiment", {"TENSORBOARD": "maybe"})


def test_tensorboard_without_tensorboardx_is_one_line_saying_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # not installed: importing it raises ImportError
    out = tmp_path / "run"
    result = hostile.command("experiment", "--depth", "3", "--width", "8", "--steps", "5", "--data", "spirals:n=200",
                             "--tensorboard", "--out", out)  # fmt: skip
    assert result.code == 2
    hostile.refused(result, "tensorboardX", "pip install")
    assert not out.exists()  # refused before anything is written
