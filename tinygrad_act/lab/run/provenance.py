"""What a run depends on beyond its settings, fingerprinted in config.json and checked wherever the run is reused.

- the data: ``dataset.sha256`` (of the file's bytes, of the arrays given to ``run()``, or of a built-in's generated
  arrays), and for a file its path as typed (``data``) and absolute (``dataset.params.path``);
- the plug-ins loaded (common/plugins.py): each file's path and sha256.

A resumed run reads its data from the absolute path it recorded (the directory it is resumed from does not
matter) and refuses, in one line naming the file and both hashes, data or a plug-in that changed since
(``check``); a sweep redoes the runs whose data or plug-ins changed (``changed``). ``config_record`` is what
config.json holds: the settings, what they resolved to, and these fingerprints.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from ...common import __version__, plugins
from ...common.errors import UsageError
from .. import data
from ..data import userdata
from . import recurrent


def data_source(config, stored: dict) -> str:
    """The data spec to read for a run made with ``config`` and config.json ``stored``: a file at the absolute path
    it recorded (as typed if that is gone, so the refusal names what the user wrote), else ``config.data``."""
    params = (stored.get("dataset") or {}).get("params") or {}
    path = params.get("path") if isinstance(params, dict) else None
    if userdata.is_user_spec(config.data, data.names()) and isinstance(path, str) and Path(path).exists():
        return path
    return config.data


def check(stored: dict, dataset, file) -> None:
    """UsageError naming what changed since the run recorded ``stored`` (its config.json ``file``): data, a plug-in."""
    entry = stored.get("dataset") if isinstance(stored.get("dataset"), dict) else {}
    was = entry.get("sha256")
    if isinstance(was, str) and was != dataset.sha256:
        where = (entry.get("params") or {}).get("path") or stored.get("data")
        raise UsageError(f"the data {where} changed since the run started (sha256 {was[:16]}... in {file}, "
                         f"{dataset.sha256[:16]}... now); a resumed run must continue on the same data")  # fmt: skip
    reason = _plugins_changed(stored)
    if reason:
        raise UsageError(f"{reason} since the run started ({file}); a resumed run must use the same code")


def changed(stored: dict, spec: str) -> str | None:
    """Why the run ``stored`` (its config.json) cannot be reused for data ``spec`` now, or None: a data file or
    arrays of another sha256, a plug-in changed. Built-in data is fixed by its settings and is not read here."""
    was = (stored.get("dataset") or {}).get("sha256") if isinstance(stored.get("dataset"), dict) else None
    if userdata.is_user_spec(spec, data.names()) and isinstance(was, str):
        try:
            now = userdata.fingerprint(spec)
        except UsageError:
            return None  # the sweep's own check of the data says what is wrong, before anything runs
        if now != was:
            return f"the data {spec} changed (sha256 {was[:16]}... then, {now[:16]}... now)"
    return _plugins_changed(stored)


def _plugins_changed(stored: dict) -> str | None:
    """'plug-in X changed (sha256 a... then, b... now)' for the first plug-in recorded in ``stored`` that differs."""
    now = {entry["path"]: entry["sha256"] for entry in plugins.fingerprints()}
    for entry in stored.get("plugins") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        path, was = entry["path"], entry.get("sha256")
        current = now.get(path) or plugins.file_sha256(path)
        if current != was:
            shown = f"{current[:16]}... now" if current else "not found now"
            return f"plug-in {path} changed (sha256 {str(was)[:16]}... then, {shown})"
    return None


def config_record(config, path: Path, model, dataset, command: str | None) -> dict:
    """config.json: the settings, what they resolved to (activation and initializer parameters, the data and its
    sha256, a sequence task's T and targets) and the plug-ins' fingerprints, which ``check`` and ``changed`` read."""
    if config.model == "rnn":
        activation, init = {"name": config.cell}, {"name": "pytorch_default" if config.init == "auto" else config.init}
    else:
        activation, init = model.activation.params, {"name": model.init.name, "params": model.init.params}
    return {
        **dataclasses.asdict(config),
        "out": str(path),
        "activation_params": activation,
        "init_resolved": init,
        "dataset": {
            "name": dataset.name,
            "params": dataset.params,
            "features": dataset.num_features,
            "classes": dataset.num_classes,
            "train": len(dataset.y_train),
            "test": len(dataset.y_test),
            "sha256": dataset.sha256,  # what a resumed run or a sweep's rerun checks (provenance.py)
            **(recurrent.dataset_entry(dataset) if config.model == "rnn" else {}),
        },
        "plugins": plugins.fingerprints(),
        "parameters": model.num_parameters(),
        "version": __version__,
        "numpy": np.__version__,
        "command": command or " ".join(sys.argv),
    }
