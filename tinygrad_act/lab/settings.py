"""Every setting of a run, declared once: its type (the annotation), default, range or choices, help, and the
name each entrance gives it (``--batch-size``, ``BATCH``), with common/validate.py's ``setting``.

This is the one schema every entrance reads: the command line's options and the make variables are made from
it, ``tinygrad_act.run``'s signature and docstring too, and Python keywords, sweep TOML, config.json and
checkpoints read back all pass ``Setting.check`` (exact types: ``residual="false"`` is an error). It sits at the
bottom of the lab so every room may read it (show checks a config.json it draws); ``lab/run/config.py``'s
``Config`` adds what a run does with the settings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..common import files, validate
from ..common.validate import setting
from ..nn.recurrent_net import CELLS

CONFIG_FILE = "config.json"
ENGINES = ("numpy", "torch")
DEVICES = ("cpu", "cuda")
# config.json's engine of a PyTorch model measured by tinygrad_act.watch (torch/finish.py): not a run's setting
WATCHED_ENGINE = "torch (watch)"


@dataclasses.dataclass
class Settings:
    """Every setting of a run, declared once. Defaults make ``DEPTH=20 ACT=sigmoid`` a clear demonstration."""

    depth: int = setting(20, "hidden layers", low=1)
    width: int = setting(64, "units per hidden layer (a recurrent run's: the hidden size H)", low=1)
    act: str = setting("sigmoid", "activation, optionally with parameters: leaky_relu:alpha=0.2")
    # a recurrent run's: of each gate's block of W_hh (identity with cell relu: IRNN); auto = PyTorch's default
    init: str = setting("auto", "weight initializer; auto = recommended for the activation (a recurrent run's: of "
                        "W_hh's gate blocks; auto = PyTorch's default)")  # fmt: skip
    # the output layer's; "same" = init; xavier_normal kept the numbers
    output_init: str = setting("xavier_normal", "the output layer's initializer; same = init, auto = xavier_normal")
    # variance of the initial biases, N(0, sigma_b2) (mean-field theory's sigma_b^2)
    sigma_b2: float = setting(0.0, "variance of the initial biases, drawn N(0, sigma_b2); 0 = zero biases", low=0,
                              high=1e6)  # fmt: skip
    optimizer: str = setting("sgd", "sgd or adam, optionally with parameters: sgd:nesterov=true", make="OPT")
    lr: float = setting(0.02, "learning rate", low=0, low_open=True)
    momentum: float = setting(0.9, "SGD momentum", low=0, high=1, high_open=True)
    batch_size: int = setting(64, "examples per step", low=1, make="BATCH")
    steps: int = setting(1000, "optimizer steps", low=1)
    data: str = setting("mnist1d", "dataset, optionally with parameters (spirals:classes=5), or a .npz/.csv file")
    seed: int = setting(0, "seed of the weights and the batch order", low=0)
    dtype: str = setting("float64", "float32 or float64", choices=("float32", "float64"))
    residual: bool = setting(False, "identity skip connections around hidden layers")
    norm: str = setting("none", "none, batch or layer normalization", choices=("none", "batch", "layer"))
    clip: float = setting(0.0, "global gradient-norm clip, 0 = off", low=0)
    log_every: int = setting(10, "measure every N steps", low=1)
    eval_every: int = setting(100, "test-set evaluation every N steps", low=1)
    # TensorBoard histograms at measured steps, at most one every hist_every steps
    hist_every: int = setting(10, "TensorBoard histograms at measured steps, at most one every N steps", low=1)
    # True: every figure the run can draw; False: none; or the names of those to draw (lab/show/run_figures.py)
    figures: bool | list[str] = setting(True, "the PNG figures to draw: all, none (--no-figures is faster) or "
                                        "those named: gradient_flow,saturation (tinygrad-act list names them; "
                                        "jacobian only where the Jacobian is measured)")  # fmt: skip
    # also write TensorBoard event files (optional extra: tensorboardX)
    tensorboard: bool = setting(False, "also write TensorBoard event files to RUN_DIR/tensorboard/")
    # replay a captured step on unmeasured steps (nn/step.py): faster, the same numbers
    capture: bool = setting(True, "replay a captured step on unmeasured steps (the same numbers, faster)")
    # singular values of dz_L/dz_1 at step 0; None = auto (lab/measure/jacobian.py)
    jacobian: bool | None = setting(None, "singular values of dz_L/dz_1 at step 0 (None: when depth >= 2 and "
                                    "width <= 512)")  # fmt: skip
    # a recurrent run (lab/run/recurrent.py): one recurrent layer of `cell`, `width` units, reading a sequence task
    model: str = setting("mlp", "mlp, or rnn: a recurrent layer of CELL reading a sequence task (DATA=adding, copy, "
                         "mnist1d_seq)", choices=("mlp", "rnn"))  # fmt: skip
    cell: str = setting("tanh", "a recurrent run's cell: tanh, relu (Elman RNNs), lstm (lstm:forget_bias=1) or gru",
                        choices=CELLS, spec=True)  # fmt: skip
    seq_len: int | None = setting(None, "T, the steps of a sequence dataset (None: the dataset's own)", low=1)
    # truncated BPTT (nn/recurrent.py): the carried state is cut every K steps; 0 = the whole sequence
    truncate: int = setting(0, "truncated backpropagation through time: gradients reach back at most K steps; 0 = "
                            "full BPTT", low=0)  # fmt: skip
    # who trains the MLP (lab/run/engines.py): this package's numpy engine, or PyTorch (tinygrad_act/torch/engine.py)
    engine: str = setting("numpy", "numpy, or torch: the same run trained in PyTorch (pip install "
                          "'tinygrad_act[torch]')", choices=ENGINES)  # fmt: skip
    device: str = setting("cpu", "where engine torch trains: cpu or cuda", choices=DEVICES)
    out: str = setting("", "run directory (default: a fresh name under runs/)")


SETTINGS = validate.settings_of(Settings)
# What a run takes beside its settings: how the run directory is claimed and whether a progress bar is shown.
RUN_OPTIONS = (
    validate.Setting(
        "force",
        bool,
        False,
        "replace the run directory given by out if it holds a run (only the files that run wrote are removed)",
    ),  # fmt: skip
    validate.Setting("progress", bool, True, "a progress bar (on a terminal)"),
)
validate.declare(*SETTINGS, *RUN_OPTIONS)


def read_config(path) -> dict:
    """A run directory's config.json, every setting in it checked by the schema (what it resolved to, the data's
    fingerprint ... kept as they are); UsageError in one line naming the file and the setting."""
    file = Path(path) / CONFIG_FILE
    recorded = files.load_json(file, "a run's config.json")
    names = {s.name for s in SETTINGS}
    given = {k: v for k, v in recorded.items() if k in names and (k, v) != ("engine", WATCHED_ENGINE)}
    checked = validate.check_all(SETTINGS, given, str(file))
    return {**recorded, **checked}
