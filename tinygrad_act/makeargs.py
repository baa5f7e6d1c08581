"""``make experiment DEPTH=20 ...``: the Makefile's variables, read from the environment, become CLI arguments.

The Makefile exports its variables unexpanded and runs ``python -m tinygrad_act.makeargs COMMAND``; no value a
user gives ever passes through shell text, so quotes, ``$``, backticks, spaces and newlines reach the program
as data. A variable that is unset or empty is not passed, so the CLI's documented defaults apply. A variable
given on make's command line that the target does not read (``make experiment ACTIVATION=relu``) is refused
with the nearest known name (``did you mean ACT?``): the Makefile names them in ``TINYGRAD_ACT_MAKE_VARIABLES``.
"""

from __future__ import annotations

import os
import sys

from . import cli
from .common import validate
from .common.errors import EXIT_BAD_INPUT, UsageError
from .lab.run.config import RUN_OPTIONS, SETTINGS

# Variable -> option, made from the settings' declarations (lab/settings.py: each setting names its make variable,
# DEPTH, OPT, BATCH, ...), so make, the command line and run() cannot drift apart.
EXPERIMENT = {s.make: s.option for s in SETTINGS if s.kind is not bool} | {"RESUME": "--resume"}
# Switches take a boolean (1/0, true/false, yes/no): 1 gives --NAME, 0 gives --no-NAME, unset leaves the default.
SETTING_SWITCHES = {s.make: s.option for s in SETTINGS if s.kind is bool}
FORCE = {o.make: o.option for o in RUN_OPTIONS if o.name == "force"}  # a sweep never forces: it resumes
EXPERIMENT_SWITCHES = {**SETTING_SWITCHES, **FORCE}
SHOW_SWITCHES = {"WIDE": "--wide"}  # every column of the layer table: how a run is shown, no setting of it
SWEEP = {
    "ACTS": "--acts", "INITS": "--inits", "DEPTHS": "--depths", "SEEDS": "--seeds", "WIDTHS": "--widths",
    "LRS": "--lrs", "JOBS": "--jobs", "SCHEDULER": "--scheduler", "SHARD": "--shard",
}  # fmt: skip
REPORT = {"ONLY": "--only", "JOBS": "--jobs"}
REPORT_SWITCHES = {"FULL": "--full"}  # make report ONLY=edge_of_chaos FULL=1: the finding's full grid too
COMPARE = {"OUT": "--out"}
# The variables each target reads (PLUGIN: every target that runs the program), made from the tables above, so the
# check cannot disagree with what a target passes on. The Makefile's own variables (MAKEFILE_VARIABLES) are
# accepted everywhere.
TARGETS = {
    "experiment": (*EXPERIMENT, *EXPERIMENT_SWITCHES, *SHOW_SWITCHES, "PLUGIN"),
    "sweep": ("CONFIG", *SWEEP, "GRID", *(k for k in EXPERIMENT if k != "RESUME"), *SETTING_SWITCHES, "PLUGIN"),
    "report": (*REPORT, *REPORT_SWITCHES, "PLUGIN"),
    "compare": ("RUNS", *COMPARE, *FORCE, "PLUGIN"),
    "list": ("PLUGIN",),
    "show": ("RUN_DIR", *SHOW_SWITCHES, "PLUGIN"),
    "test": ("TESTS",),
    "bench": ("ONLY",),
    "check-html": ("PAGE",),
}
MAKEFILE_VARIABLES = ("PYTHON", "VENV", "PY", "STAMP", "TEST_STAMP", "LINT_STAMP", "BENCH_STAMP")
VARIABLES = tuple(dict.fromkeys(name for names in TARGETS.values() for name in names))
COMMAND_LINE = "TINYGRAD_ACT_MAKE_VARIABLES"  # the names given on make's command line, set by the Makefile
# Words a newcomer types for a variable that has another name here (the options' own names are added below).
SYNONYMS = {
    "ACTIVATION": "ACT",
    "INITIALIZER": "INIT",
    "INITIALIZATION": "INIT",
    "LEARNING_RATE": "LR",
    "LAYERS": "DEPTH",
    "EPOCHS": "STEPS",
    "ITERATIONS": "STEPS",
    "DATASET": "DATA",
    "OUTPUT": "OUT",
    "T": "SEQ_LEN",
    "STEPS_IN_TIME": "SEQ_LEN",
}


def arguments(command: str, environ=os.environ) -> list[str]:
    """The CLI arguments of ``make COMMAND`` given the variables in ``environ``; UsageError for a bad switch or a
    variable given on make's command line that ``COMMAND`` does not read.

    PLUGIN (one or more plug-ins, separated by spaces, commas or colons) applies to every command."""
    check_variables(command, environ)
    plugin = [item for name in environ.get("PLUGIN", "").replace(",", " ").split() for item in ("--plugin", name)]
    return [*_arguments(command, environ), *plugin]


def check_variables(target: str, environ=os.environ) -> None:
    """UsageError naming the first variable given on make's command line that ``target`` does not read, with
    the known name nearest to it: ``unknown variable ACTIVATION for make experiment; did you mean ACT?``."""
    known = (*TARGETS.get(target, ()), *MAKEFILE_VARIABLES)
    for name in environ.get(COMMAND_LINE, "").split():
        if name in known:
            continue
        message = f"unknown variable {name} for make {target}"
        owners = [t for t, names in TARGETS.items() if name in names]
        if owners:
            message += f" (make {' and make '.join(owners)} {'reads' if len(owners) == 1 else 'read'} it)"
        guess = nearest(name, TARGETS.get(target, ()))
        message += f"; did you mean {guess}?" if guess else "; make help lists each target's variables"
        raise UsageError(message)


def nearest(name: str, known) -> str | None:
    """The known variable a user most likely meant by ``name``: the same name in another case, a synonym or the
    name of its command-line option (OPTIMIZER -> OPT, BATCH_SIZE -> BATCH), one a prefix of the other
    (ACTIVATION -> ACT, SEEDS -> SEED), else the closest spelling (DEPHT -> DEPTH); None if none is close."""
    upper = name.upper()
    options = {**EXPERIMENT, **EXPERIMENT_SWITCHES, **SHOW_SWITCHES, **SWEEP}
    aliases = {option.lstrip("-").replace("-", "_").upper(): variable for variable, option in options.items()}
    aliases.update(SYNONYMS)
    aliases.update((variable, variable) for variable in known)
    if aliases.get(upper) in known:
        return aliases[upper]
    prefixed = [v for v in known if len(v) >= 3 and len(upper) >= 3 and (upper.startswith(v) or v.startswith(upper))]
    if prefixed:
        return max(prefixed, key=len)
    close = validate.closest(upper, aliases)
    return aliases[close] if close and aliases[close] in known else None


def _options(table: dict, environ) -> list[str]:
    return [item for name, option in table.items() if environ.get(name) for item in (option, environ[name])]


def _switches(table: dict, environ) -> list[str]:
    return [option if validate.boolean(name, environ[name]) else option.replace("--", "--no-", 1)
            for name, option in table.items() if environ.get(name)]  # fmt: skip


def _arguments(command: str, environ) -> list[str]:
    if command == "experiment":
        switches = _switches({**EXPERIMENT_SWITCHES, **SHOW_SWITCHES}, environ)
        return ["experiment", *_options(EXPERIMENT, environ), *switches]
    if command == "sweep":
        config = [environ["CONFIG"]] if environ.get("CONFIG") else []
        # GRID holds one KEY=V1,V2 per word: GRID="norm=none,batch residual=0,1"
        grids = [item for grid in environ.get("GRID", "").split() for item in ("--grid", grid)]
        base = {k: v for k, v in EXPERIMENT.items() if k not in ("OUT", "RESUME")}  # OUT: the sweep directory
        options = [*_options(base, environ), *_switches(SETTING_SWITCHES, environ)]
        out = ["--out", environ["OUT"]] if environ.get("OUT") else []
        return ["sweep", *config, *_options(SWEEP, environ), *grids, *options, *out]
    if command == "report":
        return ["report", *_options(REPORT, environ), *_switches(REPORT_SWITCHES, environ)]
    if command == "compare":
        # RUNS holds one directory or glob pattern per word; compare expands the patterns itself (no shell)
        runs = environ.get("RUNS", "").split()
        if not runs:
            raise UsageError('compare needs RUNS: make compare RUNS="runs/a runs/b" [OUT=file.png]')
        return ["compare", *runs, *_options(COMPARE, environ), *_switches(FORCE, environ)]
    if command == "list":
        return ["list"]
    if command == "show":
        return ["show", environ.get("RUN_DIR", ""), *_switches(SHOW_SWITCHES, environ)]
    raise UsageError(f"unknown make command {command!r}; choose one of: experiment, sweep, report, compare, list, show")


def main(argv=None) -> int:
    """``python -m tinygrad_act.makeargs COMMAND``: run the CLI with the arguments the environment gives;
    ``makeargs check TARGET``: only check the variables given to ``make TARGET`` (test, bench, ...)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["check"]:
            check_variables(argv[1] if len(argv) > 1 else "")
            return 0
        args = arguments(argv[0] if argv else "")
    except UsageError as error:
        print(f"make: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.argv = [sys.argv[0], *args]  # config.json records the command from sys.argv: the real arguments
    return cli.main(args, entrance="make")


if __name__ == "__main__":
    sys.exit(main())
