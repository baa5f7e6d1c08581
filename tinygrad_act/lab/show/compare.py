"""``compare``: several runs' gradient profiles on one fixed-scale axis, and a table of their numbers.

The runs are drawn at initialization (step 0, where r and the verdict are measured): the delta norm
||dL/dz_l|| per layer on the left, the weight-gradient norm ||dL/dW_l|| on the right, both on plots.NORM_RANGE
so that a healthy profile is flat and a vanishing one is steep whatever else is in the picture. Layers are
left-aligned: x = layer index, input side first, so layer 1 is at x = 1 for every run and each run's output
layer sits at its own end (depth + 1; labelled "out" when all runs share one depth, else a square marker).
Each run's mean-field prediction is dashed in its colour, anchored at its last hidden layer's measured delta.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from ...common.errors import UsageError
from ...common.validate import spell
from ..measure.records import read_metrics, read_summary
from ..settings import read_config
from ..stats import shown_verdict
from . import plots, time_report
from .format import fmt, number, pct

TABLE_HEADERS = ["run", "act", "init", "depth", "r at init", "theory r", "verdict", "test accuracy"]
TIME_HEADERS = ["run", "cell", "init", "T", "r at init", "theory r", "verdict", "test accuracy"]  # recurrent runs


@dataclasses.dataclass
class Run:
    """One finished run as compare reads it: its directory, config.json, summary.json and step-0 record."""

    path: Path
    config: dict
    summary: dict
    first: dict  # the step-0 record of metrics.jsonl

    @property
    def through_time(self) -> list | None:
        """A recurrent run's per-step entries at step 0 (None for an MLP run)."""
        return self.first.get("through_time") or None

    @property
    def depth(self) -> int:
        """The hidden layers, or a recurrent run's time steps T."""
        return len(self.through_time) if self.through_time else len(self.first["layers"]) - 1

    @property
    def act(self) -> str:
        """The activation, or a recurrent run's cell."""
        if self.through_time:
            return time_report.cell_label(self.config.get("cell", "?"))
        return str(self.config.get("act", "?"))

    @property
    def init(self) -> str:
        resolved = self.config.get("init_resolved")
        return str(resolved.get("name")) if isinstance(resolved, dict) else str(self.config.get("init", "?"))

    @property
    def engine(self) -> str:
        """Who trained it: numpy, torch (with its device off the CPU: ``torch cuda``), or a watched model's
        ``torch (watch)``."""
        engine, device = str(self.config.get("engine", "numpy")), self.config.get("device", "cpu")
        return engine if device in (None, "cpu") else f"{engine} {device}"

    @property
    def verdict(self) -> str:
        return shown_verdict(self.summary) or "-"

    @property
    def theory(self) -> dict | None:
        theory = self.summary.get("theory")
        return theory if isinstance(theory, dict) and theory.get("applies") else None


def load_run(path: Path) -> Run | None:
    """The run in ``path``, or None if it is not one (no summary.json, config.json or measured metrics.jsonl);
    UsageError in one line naming the file and the field if one of them is malformed (records.py's schema)."""
    if not all(os.path.lexists(path / name) for name in ("summary.json", "config.json", "metrics.jsonl")):
        return None
    summary, config, records = read_summary(path), read_config(path), read_metrics(path)
    first = records[0] if records else None
    if first is None or len(first["layers"]) < 2 or first["layers"][0].get("delta_norm") is None:
        return None
    return Run(path, config, summary, first)


def find_runs(arguments: list[str]) -> list[Run]:
    """The runs named by ``arguments``: run directories, sweep directories (each complete run under runs/)
    and glob patterns (expanded here, never by a shell, to the directories they match). UsageError naming the
    first that is neither."""
    runs, seen = [], set()
    for argument in arguments:
        # a pattern names the directories it matches (runs/* may also match a log file beside them)
        paths = [p for p in sorted(glob.glob(argument)) if Path(p).is_dir()] if glob.has_magic(argument) else [argument]
        if not paths:
            raise UsageError(f"{argument!r} matches no directory; give run directories, sweep directories or patterns")
        for path in map(Path, paths):
            found = _runs_in(path)
            for run in found:
                if run.path.resolve() not in seen:
                    seen.add(run.path.resolve())
                    runs.append(run)
    if not runs:
        raise UsageError("no runs to compare; give run directories, sweep directories or patterns")
    return runs


def _runs_in(path: Path) -> list[Run]:
    """[the run in path] or a sweep's complete runs; UsageError if path is neither."""
    run = load_run(path) if path.is_dir() else None
    if run is not None:
        return [run]
    sweep_runs = path / "runs"
    if path.is_dir() and sweep_runs.is_dir():
        found = [r for r in (load_run(p) for p in sorted(sweep_runs.iterdir()) if p.is_dir()) if r is not None]
        if found:
            return found
        raise UsageError(f"sweep directory {str(path)!r} holds no complete run under runs/")
    raise UsageError(
        f"{str(path)!r} is not a run directory (summary.json, config.json and a measured metrics.jsonl) "
        "nor a sweep directory (runs/NAME/)"
    )


def _names(runs: list[Run]) -> list[str]:
    """Each run's directory name, with its parent where two runs share a name."""
    names = [run.path.name for run in runs]
    return [f"{run.path.parent.name}/{name}" if names.count(name) > 1 else name for run, name in zip(runs, names)]


def _ratio_text(run: Run) -> str:
    ratio = run.summary.get("ratio_init")
    return fmt(ratio, 2)


def table(runs: list[Run]) -> str:
    """Aligned columns: run, act, init, depth, r at init (step 0), theory r, verdict, final test accuracy (for
    recurrent runs: cell and T for act and depth, r_time for r)."""
    headers = TIME_HEADERS if runs and runs[0].through_time else TABLE_HEADERS
    rows = [
        [name, run.act, run.init, str(run.depth), _ratio_text(run),
         fmt(run.theory["ratio"], 2) if run.theory else "-", run.verdict, pct(run.summary.get("test_accuracy"))]
        for run, name in zip(runs, _names(runs))
    ]  # fmt: skip
    if _engines_shown(runs):
        headers = [headers[0], "engine", *headers[1:]]
        rows = [[row[0], run.engine, *row[1:]] for row, run in zip(rows, runs)]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(headers, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    return "\n".join(lines)


def _engines_shown(runs: list[Run]) -> bool:
    """Whether the engine is shown (a column, in the legend): when a run was not trained by the numpy engine."""
    return any(run.engine != "numpy" for run in runs)


def _label(run: Run, name: str, engine: bool = False) -> str:
    """The legend entry: what the run was, its verdict and r (the numbers a reader must not misread). The run's
    own names are user text, shown literally (plots.literal: a ``$`` in them is no maths)."""
    what = f"{run.act}/{run.init}, " + (f"T = {run.depth}" if run.through_time else f"depth {run.depth}")
    what += f", {run.engine}" if engine else ""
    if name not in what:
        what += f" ({name})"
    what = plots.literal(what)
    if run.verdict == "diverged":
        return f"{what}: diverged"
    theory = f" (theory {fmt(run.theory['ratio'], 2)})" if run.theory else ""
    return f"{what}: {run.verdict}, $r$ = {_ratio_text(run)}{theory}"


def predicted_profile(run: Run) -> np.ndarray | None:
    """The mean-field delta norms of the hidden layers: the last hidden layer's measured delta times the
    per-layer factor once per layer below it (delta_l = delta_L * f^(L-l)); None where theory does not apply."""
    theory = run.theory
    if theory is None:
        return None
    factor, anchor = number(theory.get("per_layer_factor")), number(run.first["layers"][-2].get("delta_norm"))
    if not (math.isfinite(factor) and factor > 0 and math.isfinite(anchor) and anchor > 0):
        return None
    with np.errstate(all="ignore"):  # a factor of 0.05 over 80 layers underflows: drawn at the edge below
        return anchor * factor ** np.arange(run.depth - 1, -1, -1, dtype=float)


def figure(runs: list[Run], out) -> None:
    """Draw every run's step-0 delta and weight-gradient profiles side by side into the PNG ``out``."""
    names = _names(runs)
    # colour = activation as in every figure, unless two runs share one: then each run gets its own colour
    acts = [run.act for run in runs]
    keys = acts if len(set(acts)) == len(acts) else names
    rows = math.ceil((len(runs) + 3) / 2)  # legend rows: one entry per run and up to three for the markers
    fig, grid = plots.figure(2, 2, figsize=(12, 5 + 0.25 * rows), gridspec_kw={"height_ratios": [5, 0.25 * rows]})
    axes = grid[0]
    for ax in grid[1]:  # the bottom row becomes one axes-wide legend under both panels, covering no line
        ax.remove()
    legend_ax = fig.add_subplot(grid[0, 0].get_gridspec()[1, :])
    depths, engine = {run.depth for run in runs}, _engines_shown(runs)
    kinds = set()  # the edge markers drawn: explained in the legend
    for run, name, key in zip(runs, names, keys):
        color = plots.activation_color(key, keys)
        x = np.arange(1, run.depth + 2)
        for ax, field in zip(axes, ("delta_norm", "weight_grad_norm")):
            values = np.array([number(layer.get(field)) for layer in run.first["layers"]])
            kinds |= plots.draw_profile(
                ax, x, values, color, _label(run, name, engine) if field == "delta_norm" else None
            )
            if len(depths) > 1:  # each run's own output layer
                ax.plot(x[-1:], plots.clipped(values)[0][-1:], "s", ms=7, color=color)
        predicted = predicted_profile(run)
        if predicted is not None:
            inside, below, _ = plots.clipped(predicted)
            axes[0].plot(x[:-1], inside, color=color, **plots.THEORY_STYLE)
    # legend-only entries explaining the line styles and markers, in grey
    axes[0].plot([], [], color="grey", **plots.THEORY_STYLE, label="mean-field theory (dashed, run's colour)")
    if "underflow" in kinds:
        axes[0].plot([], [], color="grey", **plots.UNDERFLOW_MARKER, label="gradient 0 or below $10^{-16}$")
    if "above" in kinds:
        axes[0].plot([], [], "^", color="grey", ms=8, label="above $10^{4}$")
    if "nonfinite" in kinds:
        axes[0].plot([], [], **plots.DIVERGED_MARKER, label="not finite (diverged)")
    _axes(axes, depths)
    handles, labels = axes[0].get_legend_handles_labels()
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, loc="upper center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle("Gradient flow at initialization (step 0): one fixed log scale for every run", fontsize=11)
    plots.save(fig, out, signed=SIGNED)


def _axes(axes, depths: set[int]) -> None:
    """Shared axes: NORM_RANGE, integer layer ticks ("out" when the runs share one depth)."""
    for ax, label in zip(axes, (r"$\|\partial L / \partial z_l\|$ (delta norm)", r"$\|\partial L/\partial W_l\|_F$")):
        plots.norm_axis(ax, label)
        if len(depths) == 1:
            plots.layer_ticks(ax, next(iter(depths)) + 1)
            ax.set_xlabel("layer (input side first)")
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel(r"layer (input side first; $\blacksquare$ = each run's output layer)")
        ax.grid(alpha=0.3)
    axes[0].set_title("back-propagated delta per layer", fontsize=10)
    axes[1].set_title("weight gradient per layer", fontsize=10)


def time_figure(runs: list[Run], out) -> None:
    """Recurrent runs: ||dL/dh_t|| at step 0 against the steps back from the readout (T - t), each run's theory
    dashed in its colour (anchored at its measured step T), into the PNG ``out``."""
    names = _names(runs)
    keys = [run.act for run in runs] if len({run.act for run in runs}) == len(runs) else names
    fig, ax = plots.figure(figsize=(10, 5.5))
    for run, name, key in zip(runs, names, keys):
        color = plots.activation_color(key, keys)
        values = np.array([number(step.get("delta_norm")) for step in run.through_time])
        back = np.arange(len(values) - 1, -1, -1)
        plots.draw_profile(ax, back, values, color, _label(run, name))
        profile = (run.theory or {}).get("profile")
        anchor = values[-1]
        if profile is not None and run.theory.get("compares_with") == "hidden" and 0 < anchor < math.inf:
            ax.plot(back, plots.clipped(anchor * np.asarray(profile))[0], color=color, **plots.THEORY_STYLE)
    ax.plot([], [], color="grey", **plots.THEORY_STYLE, label="theory of ||dL/dh_t|| (dashed, run's colour)")
    plots.norm_axis(ax, r"$\|\partial L / \partial h_t\|$")
    ax.set_xlabel(r"steps back from the readout, $T - t$")
    ax.grid(alpha=0.3)
    plots.legend(ax, fontsize=8, loc="best")
    ax.set_title("Gradient through time at initialization (step 0): one fixed log scale for every run", fontsize=11)
    plots.save(fig, out, signed=SIGNED)


SIGNED = "compare"  # the Software text of the pictures compare writes (plots.signed): its own, to replace


def compare(arguments: list[str], out=None, force: bool = False) -> tuple[str, Path]:
    """Find the runs, draw them into ``out``; return (the table, the path written). Recurrent runs are compared
    through time, and only with each other.

    Without ``out`` the picture goes next to the first run (``runs/compare-a-b.png``), under a fresh name: never
    over an earlier one. An ``out`` that exists is replaced only if compare wrote it, or with ``force``.
    """
    runs = find_runs(arguments)
    recurrent = [run for run in runs if run.through_time]
    if recurrent and len(recurrent) < len(runs):
        mlps = len(runs) - len(recurrent)
        raise UsageError(f"compare draws runs of one kind: {len(recurrent)} recurrent runs and {mlps} MLP runs "
                         "given; compare recurrent runs and MLP runs apart")  # fmt: skip
    path = _default_out(runs) if out is None else Path(out)
    if out is not None:
        if path.is_dir():
            raise UsageError(f"{str(path)!r} is a directory; give the picture a file name (compare.png)")
        if os.path.lexists(path) and not force and not plots.signed(path, SIGNED):
            raise UsageError(f"{str(path)!r} exists and compare did not write it; choose another {spell('out')} or "
                             f"pass {spell('force', True)} to replace it")  # fmt: skip
    with np.errstate(all="ignore"):
        (time_figure if recurrent else figure)(runs, path)
    return table(runs), path


def _default_out(runs: list[Run]) -> Path:
    """``compare-<run names>.png`` beside the first run (``-2``, ``-3`` ... before the suffix if that name is taken)."""
    names = re.sub(r"[^A-Za-z0-9_.=-]+", "-", "-".join(run.path.name for run in runs)).strip("-.") or "runs"
    if len(names) > 80:  # a name the file system takes, still telling which runs it shows
        names = f"{names[:60]}-{hashlib.sha256(names.encode()).hexdigest()[:8]}"
    base = runs[0].path.resolve().parent / f"compare-{names}.png"
    counter = 1
    while True:
        path = base if counter == 1 else base.with_name(f"{base.stem}-{counter}.png")
        if not os.path.lexists(path):
            return path
        counter += 1
