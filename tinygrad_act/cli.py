"""``python -m tinygrad_act`` / ``tinygrad-act``: experiment, sweep, report, list, show, compare.

Bad input ends with one line naming the bad value and the valid choices, exit code 2, no traceback; a file
system that refuses a write (RunDirError) exits 1; Ctrl-C exits 130 and SIGTERM 143, the run summarized.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from . import findings
from .common import files, plugins, validate
from .common.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED, RunDirError, UsageError
from .lab.data import datasets
from .lab.measure.records import read_metrics, read_summary
from .lab.run import experiment, recurrent
from .lab.run.config import RUN_OPTIONS, SETTINGS, Config
from .lab.show import compare, plots, report, run_figures
from .lab.sweep import grid as sweeps
from .nn import activations, optim
from .nn import init as initializers


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _argument(check, name, *args, **kwargs):
    """An argparse ``type=``: ``check(name, text, ...)`` from common/validate.py, its message kept."""

    def parse(text):
        try:
            return check(name, text, *args, **kwargs, text=True)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _positive_int(name):
    return _argument(validate.integer, name, 1)


def _parsed(setting: validate.Setting):
    """An argparse ``type=`` that reads the text through the setting's declaration (common/validate.py)."""

    def parse(text):
        try:
            return setting.parse(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = setting.name  # argparse names the type in its own messages
    return parse


def add_setting(parser: argparse.ArgumentParser, setting: validate.Setting, defaults: bool = True) -> None:
    """One option made from a setting's declaration: ``--depth N``; a switch is ``--residual/--no-residual``.

    ``defaults=False`` (sweeps, resume): only an option given on the command line is set; the help still names the
    value that applies when nothing else sets it."""
    kwargs = {"help": f"{setting.help} (default %(default)s)", "default": setting.default, "dest": setting.name}
    if setting.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs.update(type=_parsed(setting), metavar=setting.name.upper())
    if setting.switch:  # --figures (all), --figures a,b (those), --no-figures (none)
        kwargs.update(nargs="?", const=True, metavar="NAME,...")
    if not defaults:
        kwargs["help"] = kwargs["help"].replace("%(default)s", str(setting.default))
        kwargs["default"] = argparse.SUPPRESS
    parser.add_argument(setting.option, **kwargs)
    if setting.switch:
        no = setting.option.replace("--", "--no-", 1)
        parser.add_argument(no, action="store_const", const=False, dest=setting.name, default=kwargs["default"],
                            help=f"none: {setting.option} 0")  # fmt: skip


def _experiment_arguments(parser: argparse.ArgumentParser, defaults: bool = True):
    """Every setting of a run but its directory (``--out``, which experiment and sweep mean differently)."""
    for setting in SETTINGS:
        if setting.name != "out":
            add_setting(parser, setting, defaults)


# How a run is shown, not a setting of it (make's WIDE): the schema does not hold it, config.json does not record it.
WIDE_HELP = "every column of the layer table, however wide (default: the columns that fit the terminal)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tinygrad-act`` and ``python -m tinygrad_act``."""
    parser = _Parser(prog="tinygrad-act", description="See why gradients vanish, explode or flow in deep MLPs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    experiment = commands.add_parser("experiment", help="train one deep MLP and measure every layer")
    _experiment_arguments(experiment)
    for setting in (*(s for s in SETTINGS if s.name == "out"), *RUN_OPTIONS):
        add_setting(experiment, setting)
    experiment.add_argument("--wide", action=argparse.BooleanOptionalAction, default=False, help=WIDE_HELP)
    experiment.add_argument(
        "--resume", metavar="RUN_DIR", default="", help="continue an interrupted run from its checkpoint.npz"
    )
    sweep = commands.add_parser("sweep", help="a grid of runs (resumable, parallel); see experiments/*.toml")
    sweep.add_argument("config", nargs="?", default=None, help="a named config under experiments/ or a TOML file")
    for flag, key in (
        ("--acts", "act"),
        ("--inits", "init"),
        ("--depths", "depth"),
        ("--seeds", "seed"),
        ("--widths", "width"),
        ("--lrs", "lr"),
    ):
        sweep.add_argument(flag, dest=f"grid_{key}", default=None, help=f"comma-separated values of {key}")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="grid over any experiment parameter (repeatable); e.g. --grid norm=none,batch",
    )
    _experiment_arguments(sweep, defaults=False)
    sweep.add_argument("--out", dest="sweep_out", default="", help="sweep directory (default runs/sweep-<name>)")
    sweep.add_argument("--jobs", type=_positive_int("jobs"), default=1, help="parallel local processes (default 1)")
    sweep.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of a Dask scheduler (optional extra 'dask')")
    sweep.add_argument("--shard", default=None, help="i/N: run only every N-th run starting at i (0-based)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    report = commands.add_parser("report", help="run the findings' sweeps and write experiments/README.md")
    report.add_argument("--only", default="", help="comma-separated findings (default: all)")
    report.add_argument("--jobs", type=_positive_int("jobs"), default=2, help="parallel local processes (default 2)")
    report.add_argument("--runs", default="runs/report", help="where the runs live (default %(default)s)")
    report.add_argument("--out", default="experiments", help="where README.md and figures/ go (default %(default)s)")
    report.add_argument("--no-progress", action="store_true", help="no progress bars")
    full = "also run the chosen findings' full grids and rewrite their committed tables (slow)"
    report.add_argument("--full", action=argparse.BooleanOptionalAction, default=False, help=full)
    listing = commands.add_parser("list", help="registered activations, initializers, datasets and optimizers")
    listing.add_argument("-v", "--verbose", action="store_true", help="parameters, defaults and descriptions too")
    show = commands.add_parser("show", help="print the table and verdict of an existing run directory")
    show.add_argument("run_dir")
    show.add_argument("--wide", action=argparse.BooleanOptionalAction, default=False, help=WIDE_HELP)
    compare = commands.add_parser("compare", help="overlay runs' gradient profiles on one fixed log scale")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run or sweep directories, or glob patterns")
    compare.add_argument("--out", default=None, help="the PNG to write (default: compare-<runs>.png beside the runs, "
                         "a fresh name; an existing file only if compare wrote it)")  # fmt: skip
    compare.add_argument(
        "--force",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="replace --out even if compare did not write it",
    )
    for command in commands.choices.values():
        command.add_argument(
            "--plugin",
            action="append",
            default=[],
            metavar="MODULE",
            help="a module name or .py file that registers activations, initializers, datasets (repeatable; "
            "also TINYGRAD_ACT_PLUGINS=a,b and the entry-point group tinygrad_act.plugins)",
        )
    return parser


def _config_from(args) -> Config:
    names = {s.name for s in SETTINGS}
    return Config(**{k: v for k, v in vars(args).items() if k in names})


def cmd_experiment(args) -> int:
    """Train one MLP, write its run directory, print the table and the verdict."""
    if args.resume:
        return _resume(args)
    config = _config_from(args)
    command = "python -m tinygrad_act " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = experiment.run(config, force=args.force, progress=args.progress, command=command, draw_aside=True)
    print(report.terminal_report(summary, files.read_records(summary["path"]), config, wide=args.wide))
    if summary.get("figures_skipped"):
        print(summary["figures_skipped"])
    return {"SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_TERMINATED}.get(summary.get("signal"), 0)


def _resume(args) -> int:
    """``experiment --resume RUN_DIR``: the settings are the run's own; an option given beside it must match."""
    config = Config.read(args.resume)
    given = _Parser(prog="resume")
    _experiment_arguments(given, defaults=False)
    given.add_argument("--out", default=argparse.SUPPRESS)
    add_setting(given, RUN_OPTIONS[0], defaults=False)  # --force
    options, _ = given.parse_known_args(args.argv)
    for key, value in vars(options).items():
        if key == "force" or (key == "out" and value != args.resume) or getattr(config, key, value) != value:
            raise UsageError(f"--{key.replace('_', '-')} cannot change a resumed run (its settings are in "
                             f"{args.resume}/config.json); drop it")  # fmt: skip
    summary = experiment.resume(args.resume, progress=args.progress, draw_aside=True)
    print(report.terminal_report(summary, files.read_records(summary["path"]), config, wide=args.wide))
    return {"SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_TERMINATED}.get(summary.get("signal"), 0)


def cmd_sweep(args) -> int:
    """Run (or resume) a grid of experiments and print its table.

    The command line overrides the named config's settings; a key given twice on the command line (``--grid
    depth=1 --depths 2``, ``--depths 2 --depth 3``), or fixed there while the config grids over it, is refused.
    The command line's grid values are text, read by each setting's declaration (``Sweep.from_text``).
    """
    base = sweeps.load_config(args.config) if args.config else None
    texts, sources = {}, {}  # grid key -> its values as typed, and the option that set it on the command line

    def set_grid(key, values, source):
        if key in sources:
            raise UsageError(f"{key} is given twice, by {sources[key]} and by {source}; give it once")
        sources[key] = source
        texts[key] = values

    for item in args.grid:
        key, eq, values = item.partition("=")
        if not eq or not values:
            raise UsageError(f"bad --grid {item!r}; write KEY=V1,V2")
        set_grid(key.strip().replace("-", "_"), [v.strip() for v in values.split(",") if v.strip()], f"--grid {item}")
    for key in ("act", "init", "depth", "seed", "width", "lr"):
        values = getattr(args, f"grid_{key}")
        if values:
            # activation specs use commas for their own parameters: split on commas not inside a spec
            set_grid(key, sweeps.split_values(values), f"--{key}s {values}")
    grid = {**(base.grid if base else {}), **(sweeps.Sweep.from_text(texts).grid if texts else {})}
    given = {k: v for k, v in vars(args).items() if k in sweeps.CONFIG_FIELDS}
    for key, value in given.items():
        if key in grid:
            source = sources.get(key) or f"the grid of sweep config {args.config!r}"
            option = "--" + key.replace("_", "-")
            raise UsageError(
                f"{key} is given twice, by {source} and by {option} {value}; give it once"
                + ("" if key in sources else f" (to change the grid: --grid {key}={value})")
            )
    fixed = {k: v for k, v in {**(base.fixed if base else {}), **given}.items() if k not in grid}
    if not grid:
        raise UsageError("a sweep needs a grid: name a config (e.g. vanishing_depth) or give --acts/--depths/--grid")
    sweep = sweeps.Sweep(grid, fixed, base.name if base else "sweep", base.description if base else "")
    shard = sweeps.parse_shard(args.shard) if args.shard else None
    out = args.sweep_out or f"runs/sweep-{sweep.name}"
    rows = sweeps.run_sweep(
        sweep, out, jobs=args.jobs, scheduler=args.scheduler, shard=shard, progress=not args.no_progress
    )
    print((Path(out) / "sweep.md").read_text() if (Path(out) / "sweep.md").exists() else "")
    skipped = plots.unavailable()
    print(f"{len(rows)} runs in {out}/ (sweep.csv, sweep.md, {'' if skipped else 'figures/, '}report.html)")
    if skipped:
        print(skipped)
    return 0


def cmd_report(args) -> int:
    """Run the findings' sweeps and write experiments/README.md."""
    names = [n.strip() for n in args.only.split(",") if n.strip()] or None
    path = findings.generate(
        names, runs_root=args.runs, out_dir=args.out, jobs=args.jobs, progress=not args.no_progress, full=args.full
    )
    print(f"wrote {path}")
    return 0


def cmd_list(args) -> int:
    """Print the registered activations, initializers, datasets and optimizers."""
    rows = [("activations", activations), ("initializers", initializers), ("datasets", datasets), ("optimizers", optim)]
    d = Config()
    # what an experiment uses when the optimizer spec does not say (--lr, --momentum), not the classes' own defaults
    experiment_defaults = {"sgd": {"lr": d.lr, "momentum": d.momentum}, "adam": {"lr": d.lr}}
    for title, module in rows:
        print(f"{title}: {', '.join(module.names())}")
        if args.verbose:
            lines = module._REGISTRY.describe(experiment_defaults if module is optim else None)
            print("\n".join("    " + line for line in lines))
    cells = ", ".join(f"{name}:{','.join(params)}" if params else name for name, params in
                      ((c, recurrent.CELL_PARAMETERS.get(c, ())) for c in recurrent.CELLS))  # fmt: skip
    print(f"cells (--model rnn): {cells}")
    print(
        f"figures (--figures NAME,...): an MLP run's: {', '.join(run_figures.names())}; a recurrent run's: "
        f"{', '.join(run_figures.names('rnn'))} (gates for lstm and gru, saturation_time for the others)"
    )
    if args.verbose:
        print(f"optimizers' lr and momentum: the experiment's --lr {d.lr} and --momentum {d.momentum} (sgd only)")
    print("parameters: name:param=value[,param=value], e.g. leaky_relu:alpha=0.2, spirals:classes=5")
    return 0


def cmd_show(args) -> int:
    """Print the table and verdict of a finished run directory (its files read through their schema)."""
    path = Path(args.run_dir)
    if not path.is_dir() or not os.path.lexists(path / "summary.json"):
        raise UsageError(f"{str(path)!r} is not a finished run directory (no summary.json)")
    summary, config, records = read_summary(path), Config.read(path), read_metrics(path)
    summary["path"] = str(path)
    print(report.terminal_report(summary, records, config, wide=args.wide))
    return 0


def cmd_compare(args) -> int:
    """Overlay the runs' step-0 profiles with their theory into one PNG; print their table."""
    table, path = compare.compare(args.runs, args.out, force=args.force)
    print(table)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "experiment": cmd_experiment,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "list": cmd_list,
    "show": cmd_show,
    "compare": cmd_compare,
}


def main(argv=None, entrance: str = "cli") -> int:
    """Run a command; return the exit code (0; 2 bad input; 1 the file system refused; 130 Ctrl-C; 143 SIGTERM).

    ``entrance`` ("cli" or "make") is how messages name settings: ``--force`` or ``FORCE=1``."""
    with validate.entrance(entrance):
        return _main(argv)


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # which options were given (experiment --resume)
    try:
        plugins.load(args.plugin)  # before anything resolves a name; also exported to sweep workers
        return COMMANDS[args.command](args)
    # Only these are the user's to fix; any other exception (a ValueError inside training, say) is a bug and
    # keeps its traceback.
    except (UsageError, RunDirError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_BAD_INPUT)
    except KeyboardInterrupt as interrupt:
        print(f"{parser.prog}: {'terminated' if hasattr(interrupt, 'exit_code') else 'interrupted'}", file=sys.stderr)
        return getattr(interrupt, "exit_code", EXIT_INTERRUPTED)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
