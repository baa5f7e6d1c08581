"""``python -m tinygrad_act`` / ``tinygrad-act``: experiment, list.

Bad input ends with one line naming the bad value and the valid choices, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys

from .experiment import Config

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _positive_int(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}")
        return value

    return parse


def _number(name, minimum=None, exclusive=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = not math.isfinite(value) or (minimum is not None and (value <= minimum if exclusive else value < minimum))
        if bad:
            need = "a positive" if exclusive else "a non-negative" if minimum == 0 else "a finite"
            raise argparse.ArgumentTypeError(f"{name} must be {need} finite number, got {text!r}")
        return value

    return parse


def _experiment_arguments(parser: argparse.ArgumentParser):
    d = Config()
    add = parser.add_argument
    add("--depth", type=_positive_int("depth"), default=d.depth, help="hidden layers (default %(default)s)")
    add("--width", type=_positive_int("width"), default=d.width, help="units per hidden layer (default %(default)s)")
    add(
        "--act",
        default=d.act,
        help="activation, optionally with parameters: leaky_relu:alpha=0.2 (default %(default)s)",
    )
    add(
        "--init", default=d.init, help="weight initializer; auto = recommended for the activation (default %(default)s)"
    )
    add("--optimizer", default=d.optimizer, help="sgd or adam (default %(default)s)")
    add("--lr", type=_number("lr", 0, exclusive=True), default=d.lr, help="learning rate (default %(default)s)")
    add("--momentum", type=_number("momentum", 0), default=d.momentum, help="SGD momentum (default %(default)s)")
    add("--batch-size", type=_positive_int("batch-size"), default=d.batch_size, help="(default %(default)s)")
    add("--steps", type=_positive_int("steps"), default=d.steps, help="optimizer steps (default %(default)s)")
    add("--data", default=d.data, help="dataset, optionally with parameters: spirals:classes=5 (default %(default)s)")
    add("--seed", type=int, default=d.seed, help="seed of the weights and the batch order (default %(default)s)")
    add("--dtype", default=d.dtype, help="float32 or float64 (default %(default)s)")
    add("--residual", action="store_true", help="identity skip connections around hidden layers")
    add("--norm", default=d.norm, help="none, batch or layer normalization (default %(default)s)")
    add(
        "--clip",
        type=_number("clip", 0),
        default=d.clip,
        help="global gradient-norm clip, 0 = off (default %(default)s)",
    )
    add(
        "--log-every",
        type=_positive_int("log-every"),
        default=d.log_every,
        help="measure every N steps (default %(default)s)",
    )
    add(
        "--eval-every",
        type=_positive_int("eval-every"),
        default=d.eval_every,
        help="test-set evaluation every N steps (default %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinygrad-act", description="See why gradients vanish, explode or flow in deep MLPs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    experiment = commands.add_parser("experiment", help="train one deep MLP and measure every layer")
    _experiment_arguments(experiment)
    experiment.add_argument("--out", default="", help="run directory (default: a fresh name under runs/)")
    experiment.add_argument("--force", action="store_true", help="overwrite the run directory given by --out")
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar")
    commands.add_parser("list", help="registered activations, initializers, datasets and optimizers")
    show = commands.add_parser("show", help="print the table and verdict of an existing run directory")
    show.add_argument("run_dir")
    return parser


def _config_from(args) -> Config:
    fields = {f.name for f in dataclasses.fields(Config)}
    values = {k.replace("-", "_"): v for k, v in vars(args).items() if k.replace("-", "_") in fields}
    return Config(**values)


def cmd_experiment(args) -> int:
    from . import report
    from .experiment import run

    config = _config_from(args)
    config.validate()
    command = "python -m tinygrad_act " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = run(config, force=args.force, progress=not args.no_progress, command=command)
    from .experiment import open_records

    print(report.terminal_report(summary, open_records(summary["path"]), config))
    return EXIT_INTERRUPTED if summary["status"] == "interrupted" else 0


def cmd_list(args) -> int:
    from . import activations, data, optim
    from . import init as initializers

    rows = [
        ("activations", activations.names()),
        ("initializers", initializers.names()),
        ("datasets", data.names()),
        ("optimizers", optim.names()),
    ]
    for title, items in rows:
        print(f"{title}: {', '.join(items)}")
    print("parameters: name:param=value[,param=value], e.g. leaky_relu:alpha=0.2, spirals:classes=5")
    return 0


def cmd_show(args) -> int:
    import json
    from pathlib import Path

    from . import report
    from .experiment import open_records

    path = Path(args.run_dir)
    if not (path / "summary.json").exists():
        raise ValueError(f"{str(path)!r} is not a finished run directory (no summary.json)")
    summary = json.loads((path / "summary.json").read_text())
    summary["path"] = str(path)
    config_values = json.loads((path / "config.json").read_text())
    config = Config(**{f.name: config_values[f.name] for f in dataclasses.fields(Config) if f.name in config_values})
    print(report.terminal_report(_nan_for_null(summary), _nan_for_null(open_records(path)), config))
    return 0


def _nan_for_null(obj):
    if isinstance(obj, dict):
        return {
            k: (math.nan if v is None and k.startswith(("ratio", "per_layer")) else _nan_for_null(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_nan_for_null(v) for v in obj]
    return obj


COMMANDS = {"experiment": cmd_experiment, "list": cmd_list, "show": cmd_show}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileExistsError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
