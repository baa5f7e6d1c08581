"""The boundary fuzzer (issue 18, done means): hypothesis mutates a valid run's config.json, summary.json,
metrics.jsonl, checkpoint.npz and its data file (types, shapes, truncation, values, links, special files), then reads
the run back as a user would (show, compare, resume, ``Run.load``). Every mutation gives a result or one clean line
with a non-zero exit: never a traceback, a hang, or a user's file deleted or changed (a refused resume leaves the
run as it was). Deterministic (derandomized, no example database) and bounded in examples, so it stays fast."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hostile import TINY, call, clean, command, interrupted_run, snapshot, unchanged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_act.lab.run.api import Run

pytestmark = pytest.mark.usefixtures("data_cache")

EXAMPLES = int(os.environ.get("BOUNDARY_FUZZ_EXAMPLES", "30"))
TIMEOUT_S = 10
FILES = ["config.json", "summary.json", "metrics.jsonl", "checkpoint.npz", "data.npz"]
READERS = ["show", "compare", "resume", "load"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A run on a data file, interrupted after two steps (so it can be resumed), with a summary to show."""
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    np.savez(root / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    interrupted_run(root / "run", data=str(root / "data.npz"))
    return root


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["nan", "inf", "-inf", "", "x", "$^$", "<b>", "completed", "vanishing"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["a", "applies", "ratio"]), st.integers(), max_size=2),
)
ARRAYS = st.one_of(
    st.sampled_from([np.array("text"), np.array([1.5, np.nan]), np.array(2**62), np.array(-3), np.array(True)]),
    st.integers(0, 3).map(lambda n: np.zeros((n, 2))),
    st.integers(0, 4).map(lambda n: np.arange(n, dtype=np.uint8)),
)
MUTATIONS = st.sampled_from(["value", "delete", "truncate", "bytes", "fifo", "zero", "directory", "empty"])


def _json_paths(value, prefix=()):
    """Every key path inside a JSON value (objects and lists)."""
    paths = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, inner in items:
        paths.append((*prefix, key))
        paths += _json_paths(inner, (*prefix, key))
    return paths


def _mutate_json(value, data):
    paths = _json_paths(value)
    if not paths:
        return data.draw(JSON_VALUES)
    *parents, last = data.draw(st.sampled_from(paths))
    holder = value
    for key in parents:
        holder = holder[key]
    if data.draw(st.booleans()) and isinstance(holder, dict):
        del holder[last]
    else:
        holder[last] = data.draw(JSON_VALUES)
    return value


def _mutate(path: Path, how: str, data) -> None:
    """Change the file at ``path`` in the way ``how`` says (and hypothesis chooses the details)."""
    content = path.read_bytes()
    if how in ("fifo", "zero", "directory"):
        path.unlink()
        {"fifo": lambda: os.mkfifo(path), "zero": lambda: path.symlink_to("/dev/zero"), "directory": path.mkdir}[how]()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncate":
        path.write_bytes(content[: data.draw(st.integers(0, max(len(content) - 1, 0)))])
    elif how == "bytes":
        at = data.draw(st.integers(0, max(len(content) - 1, 0)))
        path.write_bytes(content[:at] + data.draw(st.binary(min_size=1, max_size=8)) + content[at + 1 :])
    elif path.suffix == ".npz":
        with np.load(path) as npz:
            arrays = dict(npz)
        name = data.draw(st.sampled_from(sorted(arrays)))
        if how == "delete":
            del arrays[name]
        else:
            arrays[name] = data.draw(ARRAYS)
        np.savez(path, **arrays)
    elif path.suffix == ".jsonl":
        lines = content.decode().splitlines()
        index = data.draw(st.integers(0, len(lines) - 1))
        lines[index] = json.dumps(_mutate_json(json.loads(lines[index]), data)) if how == "value" else ""
        path.write_text("\n".join(lines) + "\n")
    else:
        value = json.loads(content)
        if how == "delete" and isinstance(value, dict) and value:
            del value[data.draw(st.sampled_from(sorted(value)))]
        else:
            value = _mutate_json(value, data)
        path.write_text(json.dumps(value))


def _read(reader: str, root: Path):
    run = root / "run"
    if reader == "show":
        return command("show", run, timeout=TIMEOUT_S)
    if reader == "compare":
        return command("compare", run, "--out", root / "compare.png", timeout=TIMEOUT_S)
    if reader == "resume":
        return command("experiment", "--resume", run, "--no-progress", timeout=TIMEOUT_S)
    return call(Run.load, run, timeout=TIMEOUT_S)


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(target=st.sampled_from(FILES), how=MUTATIONS, reader=st.sampled_from(READERS), data=st.data())
def test_a_mutated_run_file_gives_a_result_or_one_line_and_never_touches_a_users_file(made, target, how, reader, data):
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        shutil.copytree(made, root, symlinks=True, dirs_exist_ok=True)
        stored = json.loads((root / "run" / "config.json").read_text())
        stored["dataset"]["params"]["path"] = str(root / "data.npz")  # the copy's own data file
        stored["data"] = str(root / "data.npz")
        (root / "run" / "config.json").write_text(json.dumps(stored))
        _restamp_checkpoint(root)
        (root / "notes.txt").write_text("the user's own notes")
        (root / "run" / "mine.txt").write_text("the user's file in the run")
        _mutate(root / ("data.npz" if target == "data.npz" else f"run/{target}"), how, data)
        before = snapshot(root / "run")
        outcome = _read("resume" if target == "data.npz" and reader != "load" else reader, root)
        clean(outcome)
        assert (root / "notes.txt").read_text() == "the user's own notes", "LOSS: a user's file changed"
        assert (root / "run" / "mine.txt").read_text() == "the user's file in the run", "LOSS: a user's file changed"
        if outcome.kind == "refused" and reader == "resume":
            unchanged(before, root / "run")


def _restamp_checkpoint(root: Path) -> None:
    """The copied run's checkpoint records the copy's data path in its settings, as config.json now does."""
    checkpoint = root / "run" / "checkpoint.npz"
    with np.load(checkpoint) as npz:
        arrays = dict(npz)
    settings_written = json.loads(str(arrays["config"]))
    settings_written["data"] = str(root / "data.npz")
    arrays["config"] = np.array(json.dumps(settings_written))
    np.savez(checkpoint, **arrays)


def test_the_fuzzers_unmutated_run_resumes(made, tmp_path):
    shutil.copytree(made, tmp_path, symlinks=True, dirs_exist_ok=True)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    stored["dataset"]["params"]["path"] = stored["data"] = str(tmp_path / "data.npz")
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    _restamp_checkpoint(tmp_path)
    outcome = command("experiment", "--resume", tmp_path / "run", "--no-progress")
    assert outcome.kind == "ok", outcome.message
    assert TINY["steps"] == json.loads((tmp_path / "run" / "summary.json").read_text())["steps_done"]
