"""A watched model's run directory beyond its records: config.json (the model described), the theory and the
Jacobian at the first measured step, and at ``close`` the histograms, figures, report.html and summary.json,
through the same functions a native run uses (lab/run/experiment.py's summarize and theory_entry, lab/show's
figures and page), so compare, the report and a sweep's readers take it as any run.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..common import __version__, files
from ..lab.measure import jacobian as jacobian_measure
from ..lab.measure import product_svd, through_time
from ..lab.run import recurrent, rundir
from ..lab.run.config import Config
from ..lab.run.experiment import draw, summarize, theory_entry
from ..lab.settings import WATCHED_ENGINE as ENGINE
from ..lab.show import html
from ..lab.theory.mean_field import sigma_w2_of_weights
from ..nn import activations
from . import board
from . import model as reading
from .activations import module_for


def first_step(watch, layers: list) -> dict:
    """What the first measured step shows: each Linear's activation, the notes, whether the model is a chain the
    theory covers (the theory then), the Jacobian at these weights; config.json is written from it."""
    specs = list(watch._specs)
    measured = [w for w in watch.layout.recurrents if w.kept is not None]
    reason = reading.chain_reason(specs, watch._fed_by, watch._output_is_last, watch._shared)
    if measured:
        reason = "the model has recurrent layers: the theory through time applies (summary through_time)"
    elif len(specs) < 2:
        reason = "one Linear layer: no hidden layer whose gradient the depth theory follows"
    notes = [*watch.layout.notes, *reading.activation_notes(watch.layout, specs)]
    notes += [f"{w.name} ({type(w.module).__name__}, {w.reason}): not measured through time"
              for w in watch.layout.recurrents if w.reason and not any(w.name in note for note in notes)]  # fmt: skip
    first = {
        "specs": specs,
        "reason": reason,
        "notes": notes,
        "cells": [w.cell for w in measured for _ in range(w.layers)],
    }
    if measured:
        first["steps"] = int(measured[0].kept.x.shape[0])
    if reason is None:
        sigma_w2 = [sigma_w2_of_weights(layer.weight) for layer in layers[:-1]]
        biases = [linear.bias for linear in watch.layout.linears[:-1] if linear.bias is not None]
        sigma_b2 = float(np.mean([np.mean(_float64(b) ** 2) for b in biases])) if biases else 0.0
        q0 = float(np.mean(_float64(watch._seen[0][0]) ** 2))  # this batch's: the data is the user's
        first["theory"] = theory_entry(activations.get(specs[0]), sigma_w2, sigma_b2, q0)
    else:
        first["theory"] = {"applies": False, "reason": reason}
    first["jacobian"] = _jacobian(watch, specs, reason) if watch.options["jacobian"] else {
        "applies": False, "reason": "watch(..., jacobian=False)"}  # fmt: skip
    if measured:
        first["jacobian"] = {"applies": False, "reason": "not measured for a watched recurrent model"}
    described = describe(watch, specs, notes, measured)
    files.atomic_write(watch.path / "config.json", files.dumps(described, indent=2) + "\n")
    return first


def describe(watch, specs: list, notes: list, measured: list = ()) -> dict:
    """config.json of a watched model: the settings that describe it (depth, width, act, dtype, ... as a native
    run's config.json names them; a recurrent model's ``model`` rnn, ``cell``, ``width`` its hidden size and
    ``dataset.seq_len`` T, as a native recurrent run's), the model's layers and what the lab could not measure."""
    import torch

    linears = watch.layout.linears
    hidden = specs[:-1]
    widths = [linear.out_features for linear in linears[:-1]]
    dtype = str(linears[0].weight.dtype).removeprefix("torch.")
    described = {
        "engine": ENGINE,
        "depth": len(linears) - 1,
        "width": max(widths) if widths else None,
        "act": _act_name(hidden),
        "init": "the model's own",
        # the settings' dtypes are float32 and float64; a half-precision model is measured in float32
        ("dtype" if dtype in ("float32", "float64") else "torch_dtype"): dtype,
        "log_every": watch.every,
        "residual": False,
        "norm": "none",
        "out": str(watch.path),
        "module": {  # the watched torch.nn.Module ("model" is the settings' mlp or rnn)
            "class": type(watch.model).__name__,
            "layers": [
                {
                    "name": name,
                    "in_features": linear.in_features,
                    "out_features": linear.out_features,
                    "bias": linear.bias is not None,
                    "activation": spec,
                }
                for name, linear, spec in zip(watch.layout.names, linears, specs)
            ],  # fmt: skip
            "notes": notes,
            "text": repr(watch.model)[:4000],
        },
        "parameters": sum(p.numel() for p in watch.model.parameters()),
        "version": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "command": " ".join(sys.argv),
    }
    if watch._seen is not None and watch._seen[0] is not None:
        described["batch_size"] = int(watch._seen[0][0].shape[0])
    if measured:
        first = measured[0].module
        described.update(model="rnn", cell=measured[0].cell, width=first.hidden_size,
                         dataset={"seq_len": int(measured[0].kept.x.shape[0])})  # fmt: skip
        described["batch_size"] = int(measured[0].kept.x.shape[1])
        described["module"]["recurrent"] = [
            {"name": w.name, "class": type(w.module).__name__, "cell": w.cell, "input_size": w.module.input_size,
             "hidden_size": w.module.hidden_size, "num_layers": w.module.num_layers,
             "batch_first": w.module.batch_first, "measured": w.reason is None}
            for w in watch.layout.recurrents
        ]  # fmt: skip
    return described


def _act_name(hidden: list) -> str | None:
    """config.json's ``act``: the hidden Linears' one activation, ``mixed``, ``unidentified`` (None: no hidden
    Linear)."""
    if not hidden:
        return None
    return hidden[0] if len(set(hidden)) == 1 and hidden[0] else "mixed" if all(hidden) else "unidentified"


def _float64(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def _jacobian(watch, specs: list, reason: str | None) -> dict:
    """summary["jacobian"]: the singular values of dz_L/dz_1 (the last hidden layer's pre-activation against the
    first's) for the first examples of the first measured batch, each block's factor by torch.func.jacrev in
    float64, their product's spectrum by lab/measure/product_svd.py (as a native run's)."""
    if reason is not None:
        return {"applies": False, "reason": f"measured for a plain chain only: {reason}"}
    linears = watch.layout.linears[:-1]
    if len(linears) < 2:
        return {"applies": False, "reason": "one hidden layer: dz_L/dz_1 is the identity (L = 1)"}
    if len({linear.out_features for linear in linears}) > 1:
        return {"applies": False, "reason": "the hidden layers differ in width"}
    if linears[0].out_features > jacobian_measure.MAX_WIDTH:
        return {"applies": False, "reason": f"width {linears[0].out_features} > {jacobian_measure.MAX_WIDTH}"}
    x = watch._seen[0][0]
    if x.dim() != 2:
        return {"applies": False, "reason": "the first Linear's input is not (examples, features)"}
    with np.errstate(all="ignore"):
        chains = [_factors(watch, specs, row) for row in x[: jacobian_measure.EXAMPLES]]
    if not all(np.all(np.isfinite(f)) for chain in chains for f in chain):
        return {"applies": False, "reason": "the Jacobian is not finite (the forward pass overflowed)"}
    entry = jacobian_measure.summarize([product_svd.singular_values(chain) for chain in chains])
    entry["theory"] = {"applies": False, "reason": "not computed for a watched model"}
    return entry


def _factors(watch, specs: list, x) -> list[np.ndarray]:
    """J's factors for one example, input side first: dh_1/dz_1, d h_l/d h_(l-1), then dz_L/dh_(L-1)."""
    import torch
    from torch.func import jacrev

    linears = watch.layout.linears[:-1]
    modules = {spec: module for module, spec in watch.layout.activations.items()}
    module = modules.get(specs[0]) or module_for(specs[0])  # a function's: the module computing it
    act = (lambda t: module(t.clone())) if getattr(module, "inplace", False) else module  # jacrev's input stays

    def block(linear, last):
        weight, bias = linear.weight.detach().double(), None if linear.bias is None else linear.bias.detach().double()
        return lambda h: torch.nn.functional.linear(h, weight, bias) if last else act(
            torch.nn.functional.linear(h, weight, bias))  # fmt: skip

    with torch.no_grad():
        z = block(linears[0], True)(x.detach().double())
    out, h = [jacrev(act)(z).numpy()], act(z)
    for index, linear in enumerate(linears[1:], start=1):
        function = block(linear, index == len(linears) - 1)
        out.append(jacrev(function)(h).detach().numpy())
        h = function(h).detach()
    return out


def finish(watch) -> dict:
    """Histograms, figures, report.html, then summary.json (written last, whole); the summary."""
    records = watch.records
    first = watch.first or {}
    if not records:
        watch.message = watch.message or "no step was measured (step() was never called after a backward pass)"
    if watch.first is None:  # the model described as far as it was seen
        files.atomic_write(watch.path / "config.json", files.dumps(describe(watch, [None] * len(
            watch.layout.linears), watch.layout.notes), indent=2) + "\n")  # fmt: skip
    if watch.options["figures"] and records:
        watch._histograms.save(watch.path / "histograms.npz")
    depth = len(watch.layout.linears) - 1
    config = Config(depth=depth, steps=max(watch.steps, 1), log_every=watch.every)
    summary = summarize(config, records, watch.status, watch.message, watch.steps, {}, first.get("theory"))
    if first.get("cells"):  # r is r_time, the verdict and theory the first recurrent layer's (as a native run's)
        recurrent.mirror(summary, _through_time(records, first["cells"], watch.status == "diverged"))
    elif depth < 1 and records:  # a recurrent module not followed through time, one Linear: no r to measure
        summary.update(dict.fromkeys(("verdict", "verdict_final"), None))
    summary["steps_requested"] = watch.steps  # a user's loop asks for no number of steps: it made these
    if first.get("notes"):
        summary["message"] = "; ".join(filter(None, [summary["message"], *first["notes"]]))
    if first.get("jacobian"):
        summary["jacobian"] = first["jacobian"]
    if watch.options["figures"] and records:
        summary.update(draw(watch.path, records, summary))
    settings = files.read_json(watch.path / "config.json") or {"depth": depth}
    if watch.options["tensorboard"]:
        shown = Config(
            depth=depth, act=str(settings.get("act") or "unidentified"), dtype=settings.get("dtype", "float32")
        )
        summary.update(board.finish(watch, summary, shown))
    summary["wall_time_s"] = time.perf_counter() - watch._started
    summary.update(html.write_run_page(watch.path, settings, records, summary))
    summary["files"] = rundir.listing(watch.path)
    files.atomic_write(watch.path / "summary.json", files.dumps(summary, indent=2) + "\n")
    summary["path"] = str(watch.path)
    return summary


def _through_time(records: list, cells: list, diverged: bool) -> dict:
    """summary["through_time"] (through_time.summarize) of the first recurrent layer, with ``layers``: each
    recurrent layer's r_time and verdicts at the first and last measured step when there are several."""
    entry = through_time.summarize(records, cells[0], diverged)
    counts = [len(r.get("through_time_layers") or ()) for r in records]
    if entry.get("applies") and counts and min(counts) > 1:
        entry["layers"] = []
        for index in range(min(counts)):
            views = [{**r, "through_time": r["through_time_layers"][index], "layers": r["layers"][index:]}
                     for r in records]  # fmt: skip
            layer = through_time.summarize(views, cells[index], diverged)
            keys = ("ratio_init", "ratio_final", "verdict", "verdict_final", "spectral_norm_init")
            entry["layers"].append({"layer": index + 1, **{key: layer[key] for key in keys}})
    return entry
