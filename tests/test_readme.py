"""The README's examples are part of the contract: every Python block in it runs as written, and every sample
output is what its command prints (experiments/readme.py, `make readme`, writes them)."""

import importlib.util
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tinygrad_act import activations
from tinygrad_act.lab.show import drawing, run_figures

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def readers_process(tmp_path, monkeypatch):
    """The blocks run in this process as a reader's script would: in a fresh working directory, temporary files
    and the data cache under it, warnings as errors (as pytest here); what they change for the rest of the process
    put back afterwards (numpy's and PyTorch's global random state, the activations they register). A run's
    figures are rendered as none: the blocks print no figure, drawing them (matplotlib, eight pictures of the
    PyTorch block's run) was half of this test's time, and test_torch_watch.py's chain test draws and checks a
    watched run's figures."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(run_figures, "rendered", lambda path, records, summary, share=(0, 1): [])
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None  # a block imports it
    registered, numpy_state = set(activations.names()), np.random.get_state()  # noqa: NPY002 (the blocks use it)
    torch_state = torch.get_rng_state() if torch else None
    yield
    for name in set(activations.names()) - registered:
        activations.unregister(name)
    np.random.set_state(numpy_state)  # noqa: NPY002
    if torch:
        torch.set_rng_state(torch_state)


def test_every_python_block_in_the_readme_runs(readers_process):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    for i, block in enumerate(blocks):
        if re.search("^import torch$", block, re.M) and importlib.util.find_spec("torch") is None:
            continue  # the PyTorch section's block: torch is an optional extra
        exec(compile(block, f"README block {i}", "exec"), {"__name__": "readme"})  # a failure names its block
    assert len(blocks) >= 4


def test_the_readme_quick_start_is_exactly_the_two_commands():
    text = README.read_text()
    quick_start = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [line for line in quick_start.strip().splitlines()] == ["make experiment DEPTH=20 ACT=sigmoid", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def _samples_module():
    spec = importlib.util.spec_from_file_location("readme_samples", README.parent / "experiments" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Undrawn:
    """Stands in for a run's drawing process (lab/show/drawing.py): figures/ holds one empty file, not the pictures.
    A sample prints no figure, only figures/ among the run's files; drawing them (a process, matplotlib, eight
    pictures) took half of each sample's time, and test_experiment.py and test_run_figures.py check the pictures."""

    def draw(self, path, records, summary):
        return {"figures": run_figures.write(path, [("training.png", b"")])}

    def close(self):
        pass


@pytest.mark.parametrize("command", list(_samples_module().SAMPLES))
def test_each_readme_sample_is_what_its_command_prints(command, monkeypatch):
    monkeypatch.setattr(drawing, "Drawer", _Undrawn)
    samples = _samples_module()
    shown = samples.samples(README.read_text(encoding="utf-8"))
    assert command in shown, f"README.md has no sample block for {command!r}"
    printed = samples.output(samples.SAMPLES[command])
    assert samples.masked(shown[command]) == samples.masked(printed), "README.md is stale: run make readme"


def test_the_readme_sample_masks_only_the_runs_wall_time():
    samples = _samples_module()
    line = "test loss 2.307, accuracy 10.0% after 1000 steps (8.61 s)"
    assert samples.masked(line) == "test loss 2.307, accuracy 10.0% after 1000 steps (… s)"
    assert samples.masked("r = 1.0e-12 (x0.234 per layer)") == "r = 1.0e-12 (x0.234 per layer)"
