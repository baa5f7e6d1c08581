"""Run the benchmarks: ``.venv/bin/python bench/run.py [--only scalar,tensor,recurrent,memory] [--quick] [--profile]``.

Each section is a function ``run(options) -> dict`` registered below; it prints its own table and returns
every number it measured, which lands in ``bench/results.json`` (``bench/results.quick.json`` for --quick)
together with a description of the machine. Adding a section is one ``register(...)`` line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import drawing, engine, memory, recurrent, scalar_mlp, telemetry, tensor_mlp, watch  # noqa: E402
from bench.common import REPO, machine_info  # noqa: E402

TORCH_REQUIREMENT = "torch==2.13.0"  # a CPU wheel; the library imports torch only in its optional adapter (watch)


@dataclass
class Options:
    size: str = "full"  # "full", "quick" (--quick) or "tiny" (the smoke test)
    profile: bool = False  # also cProfile tinygrad_act and print where its time goes
    torch: bool = True  # include PyTorch where it is installed
    threads: int = 1  # BLAS/torch threads in the tensor and recurrent sections; 0: numpy's default (all cores)
    figures_of: Path | None = None  # the figures section times this finished run's figures (default: a fresh run)


@dataclass
class Section:
    name: str
    run: object
    description: str
    uses_torch: bool = False


SECTIONS: dict[str, Section] = {}


def register(name: str, run, description: str, uses_torch: bool = False) -> None:
    SECTIONS[name] = Section(name, run, description, uses_torch)


register("scalar", scalar_mlp.run, "Value vs micrograd's Value: identical MLP forward+backward")
register("tensor", tensor_mlp.run, "deep tanh MLP training step: tinygrad_act vs numpy by hand vs torch", True)
register("recurrent", recurrent.run, "LSTM training step over T = 100: tinygrad_act vs numpy by hand vs torch", True)
register("memory", memory.run, "peak memory of a training step, each engine in a fresh process", True)
register("telemetry", telemetry.run_telemetry, "cost of the per-layer probes on the default experiment's step")
register(
    "recurrent_telemetry",
    telemetry.run_recurrent_telemetry,
    "cost of the time probes on a recurrent run's step (T = 100, width 64): tanh, LSTM, GRU",
)
register("watch", watch.run, "what tinygrad_act.watch adds to a PyTorch training loop (every 10 steps)", True)
register("experiment", telemetry.run_experiment, "wall time of the default experiment, DEPTH=20 ACT=sigmoid")
register("figures", drawing.run, "CPU of the default run's figures in a fork of a prepared drawing process, per share")
register("engine", engine.run, "the default run trained by the numpy engine and by engine torch: time ratio", True)


def ensure_torch(required: bool) -> bool:
    """Install torch (and threadpoolctl) into this venv when missing; True when torch is importable."""
    missing = [name for name in ("torch", "threadpoolctl") if importlib.util.find_spec(name) is None]
    if "torch" not in missing:
        return True
    if sys.prefix == sys.base_prefix:
        print(f"torch is not installed and this Python is not a virtual environment: not installing it ({sys.prefix})")
        return False
    requirements = [TORCH_REQUIREMENT if name == "torch" else name for name in missing]
    print(
        f"PyTorch is not installed: installing {' '.join(requirements)} into {sys.prefix} for the comparison "
        "(a CPU wheel of several hundred MB; the library never imports it; --no-torch skips this)",
        flush=True,
    )
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements]
    if subprocess.run(pip).returncode != 0:
        message = f"installing {TORCH_REQUIREMENT} failed: {shlex.join(pip)}"
        if required:
            raise SystemExit(message)
        print(message + "; continuing without torch")
        return False
    importlib.invalidate_caches()
    return importlib.util.find_spec("torch") is not None


def reproduce_command(names: list, args) -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(REPO)
    except ValueError:
        pass
    flags = [f"--only {','.join(names)}"]
    flags += ["--quick"] * args.quick + ["--profile"] * args.profile + ["--no-torch"] * args.no_torch
    flags += [f"--threads {args.threads}"] * (args.threads != 1)
    flags += [f"--figures-of {args.figures_of}"] * (args.figures_of is not None)
    return f"{python} bench/run.py {' '.join(flags)}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated sections (default: all): {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes: a smoke run of a minute")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of tinygrad_act")
    torch_choice = parser.add_mutually_exclusive_group()
    torch_choice.add_argument("--with-torch", action="store_true", help=f"install {TORCH_REQUIREMENT} if missing")
    torch_choice.add_argument("--no-torch", action="store_true", help="leave PyTorch out (never installs it)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for numpy's BLAS and torch in the tensor and recurrent sections (default 1; 0: all cores)",
    )
    parser.add_argument(
        "--figures-of",
        type=Path,
        metavar="RUN_DIR",
        help="the figures section times this finished run's figures (default: a fresh default run)",
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/results.json, .quick.json)")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    if args.figures_of is not None and not (args.figures_of / "summary.json").is_file():
        parser.error(f"--figures-of {args.figures_of}: not a finished run (no summary.json there)")

    if args.list:
        for s in SECTIONS.values():
            print(f"{s.name:12s} {s.description}")
        return 0
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")

    size = "quick" if args.quick else "full"
    options = Options(
        size=size, profile=args.profile, torch=not args.no_torch, threads=args.threads, figures_of=args.figures_of
    )
    if options.torch and any(SECTIONS[n].uses_torch for n in names):
        # Default: install when missing for a full run (make bench); --quick installs only with --with-torch.
        if args.with_torch or not args.quick:
            options.torch = ensure_torch(required=args.with_torch)
        else:
            options.torch = importlib.util.find_spec("torch") is not None

    output = args.output or REPO / "bench" / ("results.quick.json" if args.quick else "results.json")
    results = {}
    if output.exists():  # keep the sections this run does not repeat
        try:
            results = json.loads(output.read_text())
        except json.JSONDecodeError:
            results = {}
    results.setdefault("sections", {})
    results["machine"] = machine_info()
    print(f"tinygrad_act benchmarks, {results['machine']['date']}, {results['machine']['cpu']}")
    print(f"reproduce all of it: {reproduce_command(names, args)}\n")

    for name in names:
        start = time.perf_counter()
        measured = SECTIONS[name].run(options)
        command = reproduce_command([name], args)
        machine = results["machine"]
        measured.update(seconds=time.perf_counter() - start, command=command, date=machine["date"], git=machine["git"])
        results["sections"][name] = measured
        print(f"({name}: {measured['seconds']:.0f} s; reproduce: {command})\n")
        output.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    print(f"wrote {output}")
    return 0


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
