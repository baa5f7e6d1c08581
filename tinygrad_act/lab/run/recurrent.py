"""A recurrent run (``model = "rnn"``): what experiment.py does differently when the model reads sequences.

The model is ``nn.RecurrentNet`` (a recurrent layer of ``cell``, width = hidden size, and a linear readout of the
last hidden state, or of the last K for a per-step task), trained on the dataset's task (lab/data/tasks.py:
mean squared error for the adding problem, cross-entropy otherwise) and measured through time by
measure/through_time.py's TimeProbe. ``init = "auto"`` is PyTorch's default for every parameter (U(-1/√H, 1/√H));
any other initializer draws each gate's block of W_hh, and the recurrent layer's biases start at 0, as an MLP's
(``init = "identity"`` with ``cell = "relu"`` is Le et al. 2015's IRNN). ``cell`` is a spec as activations
are: ``lstm:forget_bias=1`` sets an LSTM's forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015); the
schema (lab/settings.py) checks the cell's name, ``cell_spec`` its parameters. ``truncate = K`` trains with
truncated BPTT (nn/recurrent.py: gradients reach back at most K steps; 0 = full). An MLP run refuses the recurrent
settings (``RNN_ONLY``) away from their defaults, and a recurrent run the MLP's (``MLP_ONLY``).

The summary gains ``through_time`` (measure/through_time.py's summarize) and mirrors its r_time, per-step factor,
verdicts and theory in the top-level fields every reader of a run knows (``ratio_init``, ``per_layer_factor_init``,
``verdict``, ``theory`` ...), so sweeps, compare, findings and report.html read a recurrent run as they read an MLP;
``task`` and ``chance`` (tasks.chance) say how its loss and accuracy read.

The training step is nn/step.py's, with the task's loss: unmeasured steps replay the captured step, as an MLP's.
"""

from __future__ import annotations

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from ...common.registry import parse_spec
from ...nn import RecurrentNet
from ...nn.step import Step
from .. import data
from ..data import tasks
from ..measure import through_time, time_jacobian
from ..settings import SETTINGS

# Settings that describe an MLP's stack: a recurrent run refuses a value other than their default; and the
# settings of a recurrent layer, which an MLP run refuses likewise.
MLP_ONLY = ("depth", "act", "residual", "norm", "sigma_b2")
RNN_ONLY = ("cell", "seq_len", "truncate")

CELL_PARAMETERS = {"lstm": ("forget_bias",)}  # a cell spec's parameters (``lstm:forget_bias=1``)
_CELL = next(s for s in SETTINGS if s.name == "cell")
CELLS = _CELL.choices


def cell_spec(spec: str) -> tuple[str, dict]:
    """A cell spec as (name, parameters): ``lstm:forget_bias=1`` -> ("lstm", {"forget_bias": 1.0}); UsageError for
    an unknown cell (the setting's declaration, lab/settings.py) or parameter, or a forget bias that is not a
    number in [-1000, 1000]."""
    name, params = parse_spec(_CELL.check(spec))
    allowed = CELL_PARAMETERS.get(name, ())
    for key, value in params.items():
        if key not in allowed:
            raise UsageError(f"cell {name!r} has no parameter {key!r}; its parameters: {', '.join(allowed) or 'none'}")
        try:
            params[key] = validate.number(key, value, -1e3, 1e3)
        except UsageError as error:
            raise UsageError(f"cell {spec!r}: {error}") from None
    return name, params


def check(config, default, shape) -> None:
    """UsageError if the model and the data do not go together, or an MLP-only setting is set for a recurrent run
    (``default``: the Config of every default; ``shape``: the dataset's data.Shape or None)."""
    sequence = shape is not None and shape.seq_len > 0
    if config.model == "mlp":
        _only(config, default, RNN_ONLY, "describes a recurrent layer; an MLP run (model mlp) has none: leave it "
              f"at its default or use {validate.spell('model', 'rnn')}")  # fmt: skip
        if sequence:
            raise UsageError(f"data {config.data!r} is a sequence task (T = {shape.seq_len} steps): an MLP reads flat "
                             f"inputs; use {validate.spell('model', 'rnn')}")  # fmt: skip
        return
    cell_spec(config.cell)
    _only(config, default, MLP_ONLY, f"describes an MLP's layers; a recurrent run (model rnn) has one recurrent "
          f"layer of cell {config.cell!r}: leave it at its default")  # fmt: skip
    if not sequence:
        raise UsageError(f"model rnn reads sequences; data {config.data!r} is not a sequence task: choose one of: "
                         f"{', '.join(data.sequence_names())}")  # fmt: skip


def _only(config, default, names, why: str) -> None:
    """UsageError naming the first of ``names`` set to another value than its default, and ``why``."""
    for name in names:
        if getattr(config, name) != getattr(default, name):
            raise UsageError(f"{validate.spell(name, getattr(config, name))} {why}")


def make_model(config, features: int, outputs: int, readout_steps: int = 1, seed: int = 0) -> RecurrentNet:
    """The run's RecurrentNet with its initial weights (``seed``: the model's stream of the run's seed)."""
    auto = config.init == "auto"
    name, options = cell_spec(config.cell)
    return RecurrentNet(
        features,
        config.width,
        outputs,
        cell=name,
        readout_steps=readout_steps,
        recurrent_init=None if auto else config.init,
        bias_init=None if auto else 0.0,
        forget_bias=options.get("forget_bias"),
        truncate=config.truncate or None,
        output_init=config.output_init,
        seed=seed,
        dtype=np.dtype(config.dtype),
    )


def build(config, dataset, optimizer, seeds, should_log):
    """The model, its training step (nn.Step with the task's loss: MSE for a regression, else cross-entropy;
    replayed on unmeasured steps), the TimeProbe on the chosen steps and the endless batches (as experiment.build;
    ``optimizer``: Config.resolve's, the optimizer's class with its parameters bound)."""
    readout = dataset.y_train.shape[1] if dataset.task == "per_step" else 1
    model = make_model(config, dataset.num_features, dataset.num_outputs, readout, int(seeds[0].generate_state(1)[0]))
    optimizer = optimizer(model.parameters())
    probe = through_time.TimeProbe(model, optimizer, should_log)
    batches = data.batches(dataset, config.batch_size, np.random.default_rng(seeds[1]))
    loss = "mse" if dataset.task == "regression" else "cross_entropy"
    return model, Step(model, optimizer, config.clip, enabled=config.capture, loss=loss), probe, batches


def measure_jacobian(config, model, first_batch: np.ndarray) -> dict:
    """summary["jacobian"]: the singular values of ∂s_T/∂s_1 at step 0 (measure/time_jacobian.py), or why not."""
    steps, size = first_batch.shape[1], time_jacobian.state_size(model.recurrent)
    if not time_jacobian.wanted(config.jacobian, steps, size):
        work = f"T S^3 = {steps} x {size}^3 > {time_jacobian.MAX_WORK} (--jacobian)"
        reason = "--no-jacobian" if config.jacobian is False else "one time step" if steps < 2 else work
        return {"applies": False, "reason": reason}
    return time_jacobian.measure(model, first_batch)


def summarize(summary: dict, records: list[dict], config, dataset, diverged: bool) -> None:
    """Add ``through_time``, ``task`` and ``chance`` to ``summary`` and mirror r_time and its theory in the
    top-level fields (the module docstring)."""
    entry = through_time.summarize(records, cell_spec(config.cell)[0], diverged)
    if config.truncate and entry.get("applies"):
        entry["truncate"] = config.truncate  # r_time reads 0 when K < T: the report says why (show/time_report.py)
    summary["through_time"] = entry
    summary["task"] = dataset.task
    summary["chance"] = tasks.chance(dataset.task, dataset.num_classes, dataset.y_train, dataset.y_test)
    mirror(summary, entry)


def mirror(summary: dict, entry: dict) -> None:
    """Put ``entry`` (through_time.summarize's) in ``summary`` as ``through_time`` and mirror its r_time, per-step
    factor, verdicts and theory in the top-level fields every reader of a run knows (the module docstring)."""
    summary["through_time"] = entry
    if not entry.get("applies"):
        summary["theory"] = {"applies": False, "reason": entry.get("reason")}
        return
    for key in ("init", "final"):
        summary[f"ratio_{key}"] = entry[f"ratio_{key}"]
        summary[f"per_layer_factor_{key}"] = entry[f"factor_{key}"]
        summary[f"step_{key}"] = entry[f"step_{key}"]
        summary[f"gain_{key}"] = None
    summary["verdict"], summary["verdict_final"] = entry["verdict"], entry["verdict_final"]
    theory = entry["theory"]
    summary["theory"] = {**theory, "per_layer_factor": theory.get("factor")} if theory.get("applies") else theory


def dataset_entry(dataset) -> dict:
    """What config.json's ``dataset`` adds for a sequence task: T, the task and the labelled steps."""
    readout = dataset.y_train.shape[1] if dataset.task == "per_step" else 1
    return {"seq_len": dataset.seq_len, "task": dataset.task, "readout_steps": readout, "outputs": dataset.num_outputs}


def default_name(config) -> list[str]:
    """The first parts of a recurrent run's directory name: ``rnn-lstm-T100`` (T = the data's default if unset),
    then the initializer unless auto, and the truncation if any."""
    steps = f"T{config.seq_len}" if config.seq_len else "Tdata"
    truncate = [f"tbptt{config.truncate}"] if config.truncate else []
    return ["rnn", config.cell, *([] if config.init == "auto" else [config.init]), steps, *truncate]


def data_params(config) -> dict:
    """The dataset parameters a run's ``seq_len`` adds to its ``data`` spec ({} when unset); UsageError if the
    dataset takes no seq_len or its spec sets another."""
    if config.seq_len is None:
        return {}
    name, inline = parse_spec(config.data)
    if name not in data.sequence_names():
        raise UsageError(f"seq_len sets T of a sequence dataset; {config.data!r} is not one: choose one of: "
                         f"{', '.join(data.sequence_names())}")  # fmt: skip
    if "seq_len" in inline and inline["seq_len"] != config.seq_len:
        raise UsageError(f"seq_len {config.seq_len} disagrees with the data spec {config.data!r}: set T once")
    return {"seq_len": config.seq_len}
