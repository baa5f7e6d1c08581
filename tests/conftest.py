import functools
import gc
import importlib
import importlib.util
import os
import signal
import sys

import hostile
import pytest
from hypothesis import HealthCheck, settings

from tinygrad_act.lab.sweep import grid as sweep_grid

# CI machines are shared and noisy: no per-example deadline; a fixed, moderate number of examples.
settings.register_profile(
    "default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# The boundary tests' runs (tests/hostile.py): shared, copied by each test that changes one.
@pytest.fixture
def data_cache(tmp_path, monkeypatch):
    """The data cache in the test's own directory (boundary tests: ``pytestmark = pytest.mark.usefixtures(...)``)."""
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def finished(finished_run):
    """A finished run with figures (the shared ``finished_run`` below); tests copy it before changing anything."""
    return finished_run[0]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """An interrupted tiny run (``interrupted_run``), made once per module; tests copy it."""
    return hostile.interrupted_run(tmp_path_factory.mktemp("made") / "interrupted")


# A test that sends SIGINT (to itself or to a process it starts) asks for ``ctrl_c``: a suite started with SIGINT
# ignored (``make test &`` in a script, nohup) would otherwise ignore it too (a child inherits the ignoring), and such
# a test would wait for an end that never comes. Python's own handler is set for the test: Ctrl-C raises
# KeyboardInterrupt here, and a process started meanwhile gets the default, on which Python installs its own.
@pytest.fixture
def ctrl_c():
    """SIGINT raises KeyboardInterrupt in this process and reaches the processes it starts during the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


# One finished tiny run for the tests that only read it (the terminal report, Run's members, report.html): made
# once per test session and shared by both xdist workers (hostile.made_once). Tests must not change it; one that
# needs its own run makes it.
FINISHED_RUN = dict(depth=4, width=8, act="relu", init="he_normal", steps=30, batch_size=16, data="spirals:n=200",
                    log_every=5, eval_every=10)  # fmt: skip


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(run directory, summary) of a completed FINISHED_RUN with its figures, report.html and checkpoint."""
    from tinygrad_act.lab.run.experiment import Config, read_summary, run

    made = hostile.made_once(
        tmp_path_factory, "finished", lambda path: run(Config(**FINISHED_RUN, out=str(path / "run")), progress=False)
    )
    path = made / "run"
    return path, {**read_summary(path), "path": str(path)}  # as run returns it


# A sweep draws its own figures (about a second of matplotlib each time): a module of sweep tests turns them off with
# ``pytestmark = pytest.mark.usefixtures("no_sweep_figures")``, and a test there that reads them asks for
# ``sweep_figures`` by name, which draws them again for it.
@pytest.fixture
def sweep_figures():
    """Named by a test that reads a sweep's figures: ``no_sweep_figures`` leaves them on for it."""


@pytest.fixture
def no_sweep_figures(request, monkeypatch):
    """A sweep in this test writes its tables and page but no figures, unless the test asks for ``sweep_figures``."""
    if "sweep_figures" not in request.fixturenames:
        monkeypatch.setattr(sweep_grid, "figures", lambda root, rows, keys: [])


# A run draws its eight figures in a couple of seconds of matplotlib: a test that looks at one of them (or at the path
# they are written through) asks for ``draw_only`` and names it; tests that check them all draw them all
# (test_experiment.py, test_run_figures.py through ``finished_run``).
@pytest.fixture
def draw_only(monkeypatch):
    """``draw_only("training.png", ...)``: the runs in this test draw only the named figures, the others made but not
    rendered (run_figures.drawings filtered, so every figure's code still runs)."""
    return functools.partial(hostile.draw_only, monkeypatch)


@pytest.fixture(scope="module")
def module_draw_only():
    """``draw_only`` for a module's shared run (a module-scoped fixture's), until the module's tests end."""
    with pytest.MonkeyPatch.context() as patch:
        yield functools.partial(hostile.draw_only, patch)


# PyTorch is imported by the tests that use it, never at collection (USES_TORCH below): such a module holds
# ``torch = None`` and names ``pytorch`` (its tests skip without it) or ``pytorch_if_installed`` (None without it),
# which set the module's ``torch`` before its first test.
@pytest.fixture(scope="module")
def pytorch(request):
    """The module's ``torch``: PyTorch, or the module's tests skip (an optional extra; make test installs it)."""
    request.module.torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pytorch_if_installed(request):
    """The module's ``torch``: PyTorch where it is installed, else None (the module's tests run without it)."""
    request.module.torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None


# The longest tests first: make test runs two workers, and a run of the notebook, a README sample or a findings grid
# (5-14 s each) that starts last leaves one core idle while it ends.
LONGEST_FIRST = ("test_notebook.py", "test_readme.py", "test_findings.py", "test_torch_watch.py", "test_bench_smoke.py")
# The modules whose tests import PyTorch (directly, through the adapter or the torch engine, or through tensorboardX),
# none of them at collection: ~2.3 s of CPU in each process that imports it (1.5 s for torch, 0.8 s more for
# torch._dynamo, which a first optimizer imports). They run at the head of the second worker's share: xdist's
# worksteal gives the first worker the first half of the collection and the second the rest, and a worker that runs
# out takes tests from the end of the other's queue, so the first worker never imports PyTorch.
USES_TORCH = ("test_bench_smoke.py", "test_conventions.py", "test_fuzz.py", "test_readme.py", "test_recurrent.py",
              "test_recurrent_runs.py", "test_tensorboard.py", "test_torch_engine.py", "test_torch_optional.py",
              "test_torch_watch.py", "test_torch_watch_recurrent.py")  # fmt: skip


TORCH_BEFORE_COLLECTION = "torch" in sys.modules  # a plugin of the environment may have imported it: not a test


def pytest_collection_modifyitems(items):
    """The modules of LONGEST_FIRST first, in that order, and every other test in its place; then those of
    USES_TORCH moved, in that order, to start the second half."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort
    torch = [item for item in items if item.path.name in USES_TORCH]
    others = [item for item in items if item.path.name not in USES_TORCH]
    half = len(items) // 2
    items[:] = others[:half] + torch + others[half:]


# Python's cyclic garbage collector walks every object a process holds: after collection a worker holds ~360k
# (matplotlib, hypothesis and every test module), and the suite's 50 full collections cost ~12 s of CPU
# (gc.callbacks, make test). Objects alive at the end of collection and of each test module are frozen (gc.freeze:
# kept out of later collections; refcounting still frees them), after one collection of what is garbage then.
def pytest_collection_finish(session):
    """Freeze what collection imported (each xdist worker collects the whole suite); refuse a test module that
    imported PyTorch (see USES_TORCH)."""
    if "torch" in sys.modules and not TORCH_BEFORE_COLLECTION:
        raise pytest.UsageError("a test module imported torch at collection: import it in its tests (conftest.py)")
    gc.collect()
    gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """After a module's last test (its module fixtures torn down), freeze what outlives it (imports, caches)."""
    yield
    if nextitem is None or nextitem.path != item.path:
        gc.collect()
        gc.freeze()
