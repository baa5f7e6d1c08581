"""checkpoint.npz: everything a run needs to continue exactly where it stopped (``experiment --resume``).

One .npz of plain arrays, never pickled: ``model.*`` (Module.state_dict), ``optimizer.*`` (Optimizer.state_dict),
``stream.*`` (the batch stream: RNG state as JSON text, pending indices), ``probe.*`` (the next step, the
histograms so far), ``step`` (updates done), ``resumed`` (the steps the run was resumed from, earliest first) and
``config`` (the settings as JSON text, so a checkpoint copied from another run is refused). Written whole or not
at all (files.atomic_file) at measured steps and when the run stops; read with ``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

from ...common import files
from ...common.errors import UsageError
from .config import Config

NAME = "checkpoint.npz"
FORMAT = 1
_GROUPS = ("model", "optimizer", "stream", "probe")


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: updates done, the settings it was written with, and each part's state."""

    step: int
    config: dict
    parts: dict  # group -> {name: array}
    resumed: tuple = ()  # the steps the run was resumed from before this checkpoint, earliest first


def run_config(path) -> Config:
    """The Config a run directory was made with (its config.json); UsageError if it is not a run directory."""
    path = Path(path)
    recorded = files.read_json(path / "config.json")
    if recorded is None:
        raise UsageError(f"{str(path)!r} is not a run directory: it has no readable config.json")
    fields = {f.name for f in dataclasses.fields(Config)}
    return Config(**{**{k: v for k, v in recorded.items() if k in fields}, "out": str(path)})


def settings(config: Config) -> dict:
    """The settings a checkpoint must match (all but where the run lives and whether steps are captured)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "capture")}


def save(path, config: Config, step: int, model, optimizer, batches, probe, resumed=()) -> None:
    """Write ``path/checkpoint.npz`` for a run that has done ``step`` updates (whole or not at all)."""
    arrays = {
        "format": np.array(FORMAT),
        "step": np.array(step),
        "config": np.array(files.dumps(settings(config))),
        "resumed": np.array(resumed, dtype=np.int64),
    }
    for group, state in zip(_GROUPS, (model.state_dict(), optimizer.state_dict(), batches.state(), probe.state())):
        arrays.update((f"{group}.{name}", value) for name, value in state.items())
    with files.atomic_file(Path(path) / NAME, "wb") as handle:
        np.savez(handle, **arrays)


def load(path, config: Config) -> Checkpoint:
    """Read ``path/checkpoint.npz`` (never unpickling); UsageError in one line if it is missing, corrupt, or
    written by a run with other settings."""
    file = Path(path) / NAME
    if not file.is_file():
        raise UsageError(f"{str(path)!r} has no {NAME}: nothing to resume from")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        if int(arrays["format"]) != FORMAT:
            raise ValueError(f"format {int(arrays['format'])}, this version reads {FORMAT}")
        step, recorded = int(arrays["step"]), json.loads(str(arrays["config"]))
        resumed = tuple(int(s) for s in np.asarray(arrays.get("resumed", []), dtype=np.int64).reshape(-1))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{file} is not a checkpoint of this laboratory: {error}") from None
    expected = settings(config)
    # a setting added since the checkpoint was written is missing from it: the run had its default
    recorded = {**settings(Config()), **recorded}
    differing = [k for k in expected if files.dumps(recorded.get(k)) != files.dumps(expected[k])]
    if differing:
        key = differing[0]
        raise UsageError(f"{file} belongs to another run: its {key} is {recorded.get(key)!r}, config.json says "
                         f"{expected[key]!r}")  # fmt: skip
    if not 0 <= step <= config.steps:
        raise UsageError(f"{file} is at step {step}, outside the run's 0..{config.steps}")
    if any(not 0 <= s <= step for s in resumed):
        raise UsageError(f"{file} says the run was resumed from step {max(resumed)}, after its own step {step}")
    parts = {group: {} for group in _GROUPS}
    for name, value in arrays.items():
        group, _, rest = name.partition(".")
        if group in parts:
            parts[group][rest] = value
    return Checkpoint(step, recorded, parts, resumed)


def restore(checkpoint: Checkpoint, model, optimizer, batches, probe) -> None:
    """Put the checkpoint's state into a freshly built run (UsageError naming the first entry that does not fit)."""
    parts = checkpoint.parts
    try:
        model.load_state_dict(parts["model"])
        optimizer.load_state_dict(parts["optimizer"])
        batches.load_state(parts["stream"])
        probe.load_state(parts["probe"])
    except UsageError as error:
        raise UsageError(f"{NAME} does not fit this run: {error}") from None
    except (KeyError, ValueError, TypeError) as error:
        raise UsageError(f"{NAME} does not fit this run: {type(error).__name__}: {error}") from None
