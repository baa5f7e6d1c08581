"""The README's examples are part of the contract: every Python block in it runs as written, and every sample
output is what its command prints (experiments/readme.py, `make readme`, writes them)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_act.lab.show import drawing, run_figures

README = Path(__file__).resolve().parent.parent / "README.md"

# The blocks run as written, but a run's figures are rendered as none: the blocks print no figure, drawing them
# (matplotlib, eight pictures of the PyTorch block's run) was half of this test's time, and test_torch_watch.py's
# chain test draws and checks a watched run's figures.
RUNNER = """
import importlib.util, re, sys, warnings
warnings.simplefilter("error")
from tinygrad_act.lab.show import run_figures
run_figures.rendered = lambda path, records, summary, share=(0, 1): []
with open(sys.argv[1]) as readme:
    blocks = re.findall(r"```python\\n(.*?)```", readme.read(), re.S)
for i, block in enumerate(blocks):
    if re.search("^import torch$", block, re.M) and importlib.util.find_spec("torch") is None:
        continue  # the PyTorch section's block: torch is an optional extra
    try:
        exec(compile(block, f"README block {i}", "exec"), {"__name__": "readme"})
    except Exception as error:
        raise SystemExit(f"README block {i} failed: {type(error).__name__}: {error}")
print(len(blocks))
"""


def test_every_python_block_in_the_readme_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(README)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"),
            "PATH": "/usr/bin:/bin",
            # one BLAS and one OpenMP thread, as make test gives each worker: with torch's default of a thread
            # per core, the PyTorch block took 16 s of CPU instead of 6 s while the other pytest worker ran
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONPATH": str(README.parent),  # this checkout's package, not the one the interpreter installed
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert int(result.stdout.split()[-1]) >= 4


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
