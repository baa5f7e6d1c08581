"""Your plug-ins: a user's activation reaches the CLI, make and every sweep worker (--plugin, TINYGRAD_ACT_PLUGINS,
a script's own registrations, with or without a __main__ guard); a plug-in that fails to load is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import hostile
import pytest

from tinygrad_act import makeargs
from tinygrad_act.common import plugins
from tinygrad_act.common.errors import UsageError
from tinygrad_act.nn import activations

TINY = ["--depth", "3", "--width", "8", "--steps", "5", "--data", "spirals:n=200"]
PLUGIN = textwrap.dedent(
    """
    import numpy as np
    from tinygrad_act.nn import activations

    def pswish(x, beta=1.0):
        return x * 0.5 * (1 + np.tanh(beta * x / 2))

    def pswish_derivative(x, beta=1.0):
        s = 0.5 * (1 + np.tanh(beta * x / 2))
        return s + beta * x * s * (1 - s)

    activations.register("pswish", pswish, pswish_derivative)
    """
)


def _in_process(args, cwd, monkeypatch) -> hostile.Outcome:
    """The command line in-process in ``cwd`` with no plug-in named in the environment (a traceback: "crashed")."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(plugins.ENV, "")
    monkeypatch.delenv(plugins.ENV)  # recorded as absent before: restored so after the test
    return hostile.command(*args)


@pytest.fixture
def plugin_dir(tmp_path):
    (tmp_path / "my_acts.py").write_text(PLUGIN)
    return tmp_path


@pytest.fixture
def forget_plugins():
    """A test that loads PLUGIN in this process: afterwards pswish is unregistered and the plug-in modules it
    loaded are forgotten (plugins._loaded, sys.modules), so no later run here records or finds them."""
    loaded, modules = set(plugins._loaded), set(sys.modules)
    yield
    if "pswish" in activations.names():
        activations.unregister("pswish")
    for key in set(plugins._loaded) - loaded:
        del plugins._loaded[key]
    for name in set(sys.modules) - modules:
        if name == "my_acts" or name.startswith("tinygrad_act_plugin_"):
            del sys.modules[name]


@pytest.mark.usefixtures("forget_plugins")
def test_plugin_file_makes_a_custom_activation_usable_from_the_cli(plugin_dir, monkeypatch):
    result = _in_process(["experiment", "--act", "pswish:beta=2", *TINY, "--out", "r", "--no-progress",
                          "--no-figures", "--plugin", "my_acts.py"], plugin_dir, monkeypatch)  # fmt: skip
    hostile.succeeded(result)
    assert json.loads((plugin_dir / "r" / "config.json").read_text())["act"] == "pswish:beta=2"


def test_without_the_plugin_the_activation_is_unknown(plugin_dir, monkeypatch):
    result = _in_process(["experiment", "--act", "pswish", *TINY, "--no-progress", "--no-figures"], plugin_dir,
                         monkeypatch)  # fmt: skip
    assert result.code == 2 and "unknown activation 'pswish'" in hostile.refused(result)


@pytest.mark.usefixtures("forget_plugins", "no_sweep_figures")  # plug-ins, not the sweep's pictures
def test_plugin_module_name_from_the_environment_reaches_every_parallel_sweep_worker(plugin_dir, monkeypatch):
    """The sweep's own process is this one (the workers are what is tested); my_acts importable from plugin_dir."""
    monkeypatch.syspath_prepend(str(plugin_dir))  # a spawned worker starts with this sys.path, as with PYTHONPATH
    args = ["sweep", "--acts", "pswish,pswish:beta=2", *TINY, "--jobs", "2", "--out", "s", "--no-progress"]
    monkeypatch.chdir(plugin_dir)
    monkeypatch.setenv(plugins.ENV, "my_acts")
    hostile.succeeded(hostile.command(*args, timeout=120))
    statuses = [json.loads(p.read_text())["status"] for p in (plugin_dir / "s" / "runs").glob("*/summary.json")]
    assert statuses == ["completed", "completed"]


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(plugin_dir, monkeypatch):
    (plugin_dir / "broken.py").write_text("import no_such_module_here\n")
    result = _in_process(["list", "--plugin", "broken.py"], plugin_dir, monkeypatch)
    assert result.code == 2 and hostile.refused(result, "broken.py", "no_such_module_here")
    result = _in_process(["list", "--plugin", "not_a_module_anywhere"], plugin_dir, monkeypatch)
    assert result.code == 2 and hostile.refused(result, "'not_a_module_anywhere'")


def test_plugins_load_once_and_are_exported_for_workers_with_absolute_paths(plugin_dir, monkeypatch):
    monkeypatch.chdir(plugin_dir)
    environ = {}
    loaded = plugins.load(["my_acts.py"], environ)
    try:
        assert loaded == [str(plugin_dir / "my_acts.py")] and environ[plugins.ENV] == loaded[0]
        assert plugins.load([], environ) == loaded  # from the environment, not imported twice (no "already registered")
    finally:
        from tinygrad_act.nn import activations

        activations.unregister("pswish")
        plugins._loaded.clear()


def test_load_refuses_a_missing_file_in_one_line():
    with pytest.raises(UsageError, match="plug-in 'nowhere/x.py' failed to load: .*no such file"):
        plugins.load(["nowhere/x.py"], {})


def test_plugin_make_variable_becomes_plugin_options_for_every_command():
    assert makeargs.arguments("experiment", {"ACT": "pswish:beta=2", "PLUGIN": "my_acts.py"}) == [
        "experiment", "--act", "pswish:beta=2", "--plugin", "my_acts.py",
    ]  # fmt: skip
    assert makeargs.arguments("list", {"PLUGIN": "a.py b"})[-4:] == ["--plugin", "a.py", "--plugin", "b"]
    assert makeargs.arguments("sweep", {"CONFIG": "x", "PLUGIN": "a"})[-2:] == ["--plugin", "a"]


@pytest.mark.parametrize("guarded", [False, True])
def test_run_sweep_in_parallel_from_a_script_with_its_own_registration(tmp_path, guarded):
    """Without a __main__ guard this raised multiprocessing's bootstrapping RuntimeError in every worker; the
    script's top-level registration reaches the workers either way, and the script body runs once."""
    body = textwrap.dedent(
        """
        rows = sweep.run_sweep(sweep.Sweep({"act": ["pswish", "tanh"]}, FIXED), "out", jobs=2, progress=False)
        print("rows", sorted(r["status"] for r in rows))
        """
    )
    if guarded:
        body = 'if __name__ == "__main__":\n' + textwrap.indent(body, "    ")
    fixed = {"depth": 3, "width": 8, "steps": 5, "data": "spirals:n=200"}
    # the sweep's figures (matplotlib in the script's process) are not what this tests: drawn by test_sweep.py
    no_figures = "from tinygrad_act.lab.sweep import grid\ngrid.figures = lambda root, rows, keys: []\n"
    script = PLUGIN + f"from tinygrad_act.lab import sweep\n{no_figures}FIXED = {fixed!r}\n" + body
    (tmp_path / "script.py").write_text(script)
    environ = {k: v for k, v in os.environ.items() if k != plugins.ENV}
    result = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("rows") == 1 and "['completed', 'completed']" in result.stdout
