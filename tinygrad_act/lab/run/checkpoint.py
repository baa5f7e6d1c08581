"""checkpoint.npz: everything a run needs to continue exactly where it stopped (``experiment --resume``).

One .npz of plain arrays, never pickled: ``model.*`` (Module.state_dict), ``optimizer.*`` (Optimizer.state_dict),
``stream.*`` (the batch stream: RNG state as JSON text, pending indices), ``probe.*`` (the next step, the
histograms so far), ``step`` (updates done), ``resumed`` (the steps the run was resumed from, earliest first),
``config`` (the settings as JSON text, so a checkpoint copied from another run is refused) and ``data_sha256`` (the
data it was trained on). Written whole or not at all (files.atomic_file) at measured steps and when the run stops;
read defensively (files.read_npz: a regular file, sizes from the members' headers, never unpickled), every entry's
type checked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ...common import files, validate
from ...common.errors import RunDirError, UsageError
from .config import SETTINGS, Config

NAME = "checkpoint.npz"
FORMAT = 1
_GROUPS = ("model", "optimizer", "stream", "probe")


# The entries that are not plain numeric state, and what each must be (everything else: finite real numbers).
_TEXT = ("config", "data_sha256", "stream.rng")
_COUNTS = ("format", "step", "stream.served", "probe.step", "probe.init_step", "probe.end_step")


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: updates done, the settings it was written with, and each part's state."""

    step: int
    config: dict
    parts: dict  # group -> {name: array}
    resumed: tuple = ()  # the steps the run was resumed from before this checkpoint, earliest first


def settings(config: Config) -> dict:
    """The settings a checkpoint must match (all but where the run lives and whether steps are captured)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "capture")}


def save(path, config: Config, step: int, model, optimizer, batches, probe, data_sha256: str = "",
         resumed=()) -> None:  # fmt: skip
    """Write ``path/checkpoint.npz`` for a run that has done ``step`` updates (whole or not at all)."""
    arrays = {
        "format": np.array(FORMAT),
        "step": np.array(step),
        "config": np.array(files.dumps(settings(config))),
        "data_sha256": np.array(data_sha256),
        "resumed": np.array(resumed, dtype=np.int64),
    }
    for group, state in zip(_GROUPS, (model.state_dict(), optimizer.state_dict(), batches.state(), probe.state())):
        arrays.update((f"{group}.{name}", value) for name, value in state.items())
    with files.atomic_file(Path(path) / NAME, "wb") as handle:
        np.savez(handle, **arrays)


def load(path, config: Config, data_sha256: str | None = None) -> Checkpoint:
    """Read ``path/checkpoint.npz`` defensively (a regular file, its members' sizes from their headers, never
    unpickled) and check every entry's type; UsageError in one line naming the file if it is missing, corrupt,
    of another type, written by a run with other settings or (``data_sha256``) on other data."""
    file = Path(path) / NAME
    if not file.exists() and not file.is_symlink():
        raise UsageError(f"{str(path)!r} has no {NAME}: nothing to resume from")
    try:
        arrays = files.read_npz(file, "checkpoint")
    except RunDirError as error:
        raise UsageError(str(error)) from None
    for name, value in arrays.items():
        _check_entry(file, name, value)
    for name in ("format", "step", "config"):
        if name not in arrays:
            raise UsageError(f"{file} is not a checkpoint of this laboratory: it has no entry {name!r}")
    if int(arrays["format"]) != FORMAT:
        raise UsageError(f"{file} has format {int(arrays['format'])}; this version reads format {FORMAT}")
    step = int(arrays["step"])
    written = _settings(file, str(arrays["config"]))
    expected = settings(config)
    # a setting added since the checkpoint was written is missing from it: the run had its default
    recorded = {**settings(Config()), **written}
    differing = [k for k in expected if files.dumps(recorded.get(k)) != files.dumps(expected[k])]
    if differing:
        key = differing[0]
        raise UsageError(f"{file} belongs to another run: its {key} is {recorded.get(key)!r}, config.json says "
                         f"{expected[key]!r}")  # fmt: skip
    written_data = str(arrays["data_sha256"]) if "data_sha256" in arrays else ""
    if data_sha256 and written_data and written_data != data_sha256:
        raise UsageError(f"{file} belongs to a run on other data (sha256 {written_data[:16]}... there, "
                         f"{data_sha256[:16]}... in config.json)")  # fmt: skip
    if not 0 <= step <= config.steps:
        raise UsageError(f"{file} is at step {step}, outside the run's 0..{config.steps}")
    resumed = tuple(int(s) for s in arrays["resumed"]) if "resumed" in arrays else ()  # older: never resumed
    if any(not 0 <= s <= step for s in resumed):
        raise UsageError(f"{file} says the run was resumed from step {max(resumed)}, after its own step {step}")
    parts = {group: {} for group in _GROUPS}
    for name, value in arrays.items():
        group, _, rest = name.partition(".")
        if group in parts:
            parts[group][rest] = value
    return Checkpoint(step, recorded, parts, resumed)


def _check_entry(file, name: str, value: np.ndarray) -> None:
    """One entry of a checkpoint as its writer made it: a text, a non-negative count, the steps resumed from, or
    finite real numbers."""
    if name in _TEXT:
        if value.dtype.kind != "U" or value.ndim != 0:
            raise UsageError(f"{file}: entry {name!r} must be a text, got {value.dtype} of shape {value.shape}")
    elif value.dtype.kind not in "biuf":
        raise UsageError(f"{file}: entry {name!r} holds {value.dtype} values; a checkpoint holds numbers")
    elif name in _COUNTS and (value.ndim != 0 or value.dtype.kind not in "iu" or int(value) < 0):
        raise UsageError(f"{file}: entry {name!r} must be a non-negative integer, got {value!r}")
    elif name == "resumed" and (value.ndim != 1 or value.dtype.kind not in "iu" or np.any(value < 0)):
        raise UsageError(f"{file}: entry 'resumed' must be the steps the run was resumed from (non-negative integers "
                         f"in one row), got {value.dtype} of shape {value.shape}")  # fmt: skip
    elif value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise UsageError(f"{file}: entry {name!r} holds a value that is not finite; a checkpoint is written only "
                         "while the run's numbers are finite")  # fmt: skip
    elif name == "probe.activation_range" and (value.shape != (2,) or not value[0] < value[1]):
        raise UsageError(f"{file}: entry {name!r} must be a range (low, high), got {value!r}")


def _settings(file, text: str) -> dict:
    """The settings written into a checkpoint, checked by the schema (lab/run/config.py)."""
    try:
        written = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise UsageError(f"{file}: entry 'config' is not JSON ({type(error).__name__})") from None
    if not isinstance(written, dict):
        raise UsageError(f"{file}: entry 'config' holds a JSON {type(written).__name__}, not the settings (an object)")
    names = {s.name for s in SETTINGS}
    return validate.check_all(SETTINGS, {k: v for k, v in files.restore(written).items() if k in names},
                              f"{file} entry 'config'")  # fmt: skip


def restore(checkpoint: Checkpoint, model, optimizer=None, batches=None, probe=None) -> None:
    """Put the checkpoint's state into a freshly built run, or only into its model (``Run.model``); UsageError
    naming the first entry that does not fit."""
    parts = checkpoint.parts
    try:
        model.load_state_dict(parts["model"])
        if optimizer is not None:  # a run to continue: all of it
            optimizer.load_state_dict(parts["optimizer"])
            batches.load_state(parts["stream"])
            probe.load_state(parts["probe"])
    except UsageError as error:
        raise UsageError(f"{NAME} does not fit this run: {error}") from None
    except (KeyError, ValueError, TypeError, OverflowError, IndexError) as error:
        raise UsageError(f"{NAME} does not fit this run: {type(error).__name__}: {error}") from None
