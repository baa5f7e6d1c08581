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
from .lab.run.config import RUN_OPTIONS, SETTINGS

# Variable -> option, made from the settings' declarations (lab/run/config.py: each setting names its make
# variable, DEPTH, OPT, BATCH, ...), so make, the command line and run() cannot drift apart.
EXPERIMENT = {s.make: s.option for s in SETTINGS if s.kind is not bool} | {"RESUME": "--resume"}
# Switches take a boolean (1/0, true/false, yes/no): 1 gives --NAME, 0 gives --no-NAME, unset leaves the default.
SETTING_SWITCHES = {s.make: s.option for s in SETTINGS if s.kind is bool}
EXPERIMENT_SWITCHES = {**SETTING_SWITCHES, **{o.make: o.option for o in RUN_OPTIONS if o.name == "force"}}
SWEEP = {
    "ACTS": "--acts", "INITS": "--inits", "DEPTHS": "--depths", "SEEDS": "--seeds", "WIDTHS": "--widths",
    "LRS": "--lrs", "JOBS": "--jobs", "SCHEDULER": "--scheduler", "SHARD": "--shard",
}  # fmt: skip
REPORT = {"ONLY": "--only", "JOBS": "--jobs"}
VARIABLES = (*EXPERIMENT, *EXPERIMENT_SWITCHES, *SWEEP, "CONFIG", "GRID", "ONLY", "RUNS", "PLUGIN", "RUN_DIR")


def arguments(command: str, environ=os.environ) -> list[str]:
    """The CLI arguments of ``make COMMAND`` given the variables in ``environ``; UsageError for a bad switch.

    PLUGIN (one or more plug-ins, separated by spaces, commas or colons) applies to every command."""
    plugin = [item for name in environ.get("PLUGIN", "").replace(",", " ").split() for item in ("--plugin", name)]
    return [*_arguments(command, environ), *plugin]


def _options(table: dict, environ) -> list[str]:
    return [item for name, option in table.items() if environ.get(name) for item in (option, environ[name])]


def _switches(table: dict, environ) -> list[str]:
    return [option if validate.boolean(name, environ[name]) else option.replace("--", "--no-", 1)
            for name, option in table.items() if environ.get(name)]  # fmt: skip


def _arguments(command: str, environ) -> list[str]:
    if command == "experiment":
        return ["experiment", *_options(EXPERIMENT, environ), *_switches(EXPERIMENT_SWITCHES, environ)]
    if command == "sweep":
        config = [environ["CONFIG"]] if environ.get("CONFIG") else []
        # GRID holds one KEY=V1,V2 per word: GRID="norm=none,batch residual=0,1"
        grids = [item for grid in environ.get("GRID", "").split() for item in ("--grid", grid)]
        base = {k: v for k, v in EXPERIMENT.items() if k not in ("OUT", "RESUME")}  # OUT: the sweep directory
        options = [*_options(base, environ), *_switches(SETTING_SWITCHES, environ)]
        out = ["--out", environ["OUT"]] if environ.get("OUT") else []
        return ["sweep", *config, *_options(SWEEP, environ), *grids, *options, *out]
    if command == "report":
        return ["report", *_options(REPORT, environ)]
    if command == "compare":
        # RUNS holds one directory or glob pattern per word; compare expands the patterns itself (no shell)
        runs = environ.get("RUNS", "").split()
        if not runs:
            raise UsageError('compare needs RUNS: make compare RUNS="runs/a runs/b" [OUT=file.png]')
        return ["compare", *runs, *_options({"OUT": "--out"}, environ), *_switches({"FORCE": "--force"}, environ)]
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
    return cli.main(args, entrance="make")


if __name__ == "__main__":
    sys.exit(main())
