"""``make experiment DEPTH=20 ...``: the Makefile's variables, read from the environment, become CLI arguments.

The Makefile exports its variables unexpanded and runs ``python -m tinygrad_act.makeargs COMMAND``; no value a
user gives ever passes through shell text, so quotes, ``$``, backticks, spaces and newlines reach the program
as data. A variable that is unset or empty is not passed, so the CLI's documented defaults apply.
"""

from __future__ import annotations

import os
import sys

from . import cli
from .common import validate
from .common.errors import EXIT_BAD_INPUT, UsageError

# Variable -> option, in the order of `make help`. Flags take a boolean (1/0, true/false, yes/no).
EXPERIMENT = {
    "DEPTH": "--depth", "WIDTH": "--width", "ACT": "--act", "INIT": "--init", "OPT": "--optimizer", "LR": "--lr",
    "MOMENTUM": "--momentum", "BATCH": "--batch-size", "STEPS": "--steps", "DATA": "--data", "SEED": "--seed",
    "DTYPE": "--dtype", "NORM": "--norm", "CLIP": "--clip", "LOG_EVERY": "--log-every", "EVAL_EVERY": "--eval-every",
    "OUTPUT_INIT": "--output-init", "SIGMA_B2": "--sigma-b2", "OUT": "--out", "RESUME": "--resume",
}  # fmt: skip
# Switches with an automatic default: 1 gives --NAME, 0 gives --no-NAME, unset leaves the default.
EXPERIMENT_SWITCHES = {"JACOBIAN": "--jacobian"}
EXPERIMENT_FLAGS = {"RESIDUAL": "--residual", "TENSORBOARD": "--tensorboard", "FORCE": "--force"}
SWEEP = {
    "ACTS": "--acts", "INITS": "--inits", "DEPTHS": "--depths", "SEEDS": "--seeds", "WIDTHS": "--widths",
    "LRS": "--lrs", "JOBS": "--jobs", "SCHEDULER": "--scheduler", "SHARD": "--shard",
}  # fmt: skip
REPORT = {"ONLY": "--only", "JOBS": "--jobs"}
REPORT_FLAGS = {"FULL": "--full"}  # make report ONLY=edge_of_chaos FULL=1: the finding's full grid too
VARIABLES = (*EXPERIMENT, *EXPERIMENT_FLAGS, *EXPERIMENT_SWITCHES, *SWEEP, *REPORT_FLAGS,
             "CONFIG", "GRID", "ONLY", "RUNS", "PLUGIN", "RUN_DIR")  # fmt: skip


def arguments(command: str, environ=os.environ) -> list[str]:
    """The CLI arguments of ``make COMMAND`` given the variables in ``environ``; UsageError for a bad switch.

    PLUGIN (one or more plug-ins, separated by spaces, commas or colons) applies to every command."""
    plugin = [item for name in environ.get("PLUGIN", "").replace(",", " ").split() for item in ("--plugin", name)]
    return [*_arguments(command, environ), *plugin]


def _options(table: dict, environ) -> list[str]:
    return [item for name, option in table.items() if environ.get(name) for item in (option, environ[name])]


def _flags(table: dict, environ) -> list[str]:
    return [option for name, option in table.items() if environ.get(name) and validate.boolean(name, environ[name])]


def _switches(table: dict, environ) -> list[str]:
    return [option if validate.boolean(name, environ[name]) else option.replace("--", "--no-", 1)
            for name, option in table.items() if environ.get(name)]  # fmt: skip


def _arguments(command: str, environ) -> list[str]:
    if command == "experiment":
        switches = _switches(EXPERIMENT_SWITCHES, environ)
        return ["experiment", *_options(EXPERIMENT, environ), *_flags(EXPERIMENT_FLAGS, environ), *switches]
    if command == "sweep":
        config = [environ["CONFIG"]] if environ.get("CONFIG") else []
        # GRID holds one KEY=V1,V2 per word: GRID="norm=none,batch residual=0,1"
        grids = [item for grid in environ.get("GRID", "").split() for item in ("--grid", grid)]
        base = {k: v for k, v in EXPERIMENT.items() if k not in ("OUT", "RESUME")}  # OUT: the sweep directory
        options = [*_options(base, environ), *_flags({"RESIDUAL": "--residual"}, environ)]
        out = ["--out", environ["OUT"]] if environ.get("OUT") else []
        return ["sweep", *config, *_options(SWEEP, environ), *grids, *options, *out]
    if command == "report":
        return ["report", *_options(REPORT, environ), *_flags(REPORT_FLAGS, environ)]
    if command == "compare":
        # RUNS holds one directory or glob pattern per word; compare expands the patterns itself (no shell)
        runs = environ.get("RUNS", "").split()
        if not runs:
            raise UsageError('compare needs RUNS: make compare RUNS="runs/a runs/b" [OUT=file.png]')
        return ["compare", *runs, *_options({"OUT": "--out"}, environ)]
    if command == "list":
        return ["list"]
    if command == "show":
        return ["show", environ.get("RUN_DIR", "")]
    raise UsageError(f"unknown make command {command!r}; choose one of: experiment, sweep, report, compare, list, show")


def main(argv=None) -> int:
    """``python -m tinygrad_act.makeargs COMMAND``: run the CLI with the arguments the environment gives."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = arguments(argv[0] if argv else "")
    except UsageError as error:
        print(f"make: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.argv = [sys.argv[0], *args]  # config.json records the command from sys.argv: the real arguments
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
