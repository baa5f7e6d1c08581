"""Install what each command needs: make's per-target extras, `pip install .` alone (named configs packaged,
tomli declared for Python 3.10), figures skipped in one line without matplotlib; and the `list -v` listing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import hostile
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from tinygrad_act.lab.sweep import grid as sweep

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--depth", "3", "--width", "8", "--steps", "5", "--data", "spirals:n=200", "--no-progress"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize(
    "target, extras",
    [("experiment", "plot"), ("sweep", "plot"), ("test", "test,plot"), ("lint", "dev"), ("bench", "bench,plot")],
)
def test_each_make_target_installs_only_its_own_extras(tmp_path, target, extras):
    venv = tmp_path / "venv"  # not there: make -n shows what the first use would install
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), f"VENV={venv}", target], capture_output=True, text=True, check=True
    )
    installs = re.findall(r"pip install .*-e '\.\[([^\]]*)\]'", result.stdout)
    assert installs == [extras], result.stdout


def test_experiment_extras_are_the_runtime_and_plotting_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["plot"] == ["matplotlib>=3.7"]
    names = [re.split(r"[<>=;\[ ]", d)[0] for d in project["dependencies"]]
    assert names == ["numpy", "tqdm", "tomli"]


def test_tomli_is_declared_for_python_before_3_11_where_tomllib_is_missing():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d for d in project["dependencies"])


def test_named_configs_are_package_data_found_without_an_experiments_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no experiments/ here: as after `pip install .`
    packaged = ROOT / "tinygrad_act" / "lab" / "sweep" / "configs"
    names = sorted(p.name for p in (ROOT / "experiments").glob("*.toml"))
    assert names and sorted(p.name for p in packaged.glob("*.toml")) == names
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert data == {"tinygrad_act.lab.sweep": ["configs/*.toml"]}
    assert sweep.load_config("vanishing_depth").name == "vanishing_depth"


# One interpreter without matplotlib runs both commands (a failed import is tried again on each use).
WITHOUT_MATPLOTLIB = """
import json, sys
from tinygrad_act.cli import main
for argv in json.loads(sys.argv[1]):
    print("--- exit", main(argv), flush=True)
"""


def test_without_matplotlib_figures_are_skipped_in_one_line_and_not_listed(tmp_path):
    stand_in = tmp_path / "no_mpl" / "matplotlib"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": f"{stand_in.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    experiment = ["experiment", *TINY, "--out", str(tmp_path / "r")]
    sweep = ["sweep", "--acts", "tanh", *TINY, "--out", str(tmp_path / "s")]
    script = [sys.executable, "-c", WITHOUT_MATPLOTLIB, json.dumps([experiment, sweep])]
    result = subprocess.run(script, env=env, capture_output=True, text=True)
    experiment_out, code, sweep_out, sweep_code, _ = re.split(r"^--- exit (\d+)\n", result.stdout, flags=re.M)
    assert result.returncode == 0 and code == sweep_code == "0", result.stderr
    assert "figures skipped: matplotlib is not installed" in experiment_out
    files = next(line for line in experiment_out.splitlines() if line.startswith("files:"))
    assert "figures/" not in files and not (tmp_path / "r" / "figures").exists()
    assert "figures/" not in sweep_out and "figures skipped: matplotlib is not installed" in sweep_out


def test_list_verbose_shows_the_experiment_optimizer_defaults_aligned_without_markup():
    listing = hostile.command("list", "-v")
    assert listing.kind == "ok", listing.message
    lines = listing.stdout.splitlines()
    sgd = next(line for line in lines if line.strip().startswith("sgd:"))
    assert "lr=0.02" in sgd and "momentum=0.9" in sgd
    assert "``" not in listing.stdout
    # every description starts in one column: after a spec padded to it, or on its own line indented to it
    described = [line for line in lines if line.startswith("    ") and "  " in line.strip()]
    columns = {len(line) - len(line[4:].lstrip()) for line in described if line[4] == " "}
    columns |= {re.search(r"\S\s{2,}\S", line).end() - 1 for line in described if line[4] != " "}
    assert columns == {44}, columns
