"""A run's figures, in the one style of ``plots``: someone who sees only the picture reads the verdict right.

Every figure's title says what the run was (activation, init, depth, dtype) and its verdict with r. The files
(other code refers to them by name): gradient_flow.png, gradient_heatmap.png, update_ratio.png, saturation.png
(why, per layer: the weights' gain times the activation's gain), snr.png (the gradient's signal and noise across
the batch's examples, per layer), histograms.png (those three drawn by why_figures.py), training.png and jacobian.png
(jacobian_figure.py: the singular values of dz_L/dz_1 at step 0, the nonzero ones over log10 s, exact zeros and
unresolved values counted beside them, a dense SVD's floor, and the theory of their mean square, spread and density).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...common import files, validate
from ...common.errors import UsageError
from ..data.tasks import REGRESSION_TOLERANCE
from ..stats import shown_verdict
from . import plots, time_figures, time_report
from .format import fmt, number
from .jacobian_figure import jacobian_figure
from .why_figures import gradient_snr, histogram_figure, why_per_layer

__all__ = ["figures", "rendered", "write", "drawings", "names", "every_name", "asked", "check", "run_title",
           "gradient_flow", "gradient_heatmap", "update_ratio", "why_per_layer", "gradient_snr", "training",
           "histogram_figure", "jacobian_figure"]  # fmt: skip


def figures(path, records: list[dict], summary: dict) -> list[str]:
    """Draw the run's PNG figures into ``path/figures``; return their relative paths."""
    return write(path, rendered(path, records, summary))


def rendered(path, records: list[dict], summary: dict, share: tuple[int, int] = (0, 1)) -> list[tuple[str, bytes]]:
    """The run's figures as (file name, PNG file content), not written; ``share`` = (index, count): only those that
    ``in_share`` gives to index of count (drawing.py splits them between processes)."""
    return [(name, plots.png(fig)) for fig, name in drawings(path, records, summary, share)]


def write(path, pictures: list[tuple[str, bytes]]) -> list[str]:
    """Write ``rendered``'s pictures into ``path/figures`` (none: no directory); their relative paths."""
    written = []
    if pictures:
        out = files.subdir(path, "figures")
        for name, content in pictures:
            files.atomic_write(out / name, content)
            written.append(f"figures/{name}")
    return written


# Every figure a run draws, by its file's stem (NAME.png), in the order they are drawn: an MLP's per layer, then
# its training curves, histograms and Jacobian (those two where measured); a recurrent run's through time
# (time_figures.names), its update ratios, training curves and Jacobian. The figures setting names them
# (lab/settings.py): True draws every one, False none, a list those named.
MLP_FIGURES = ("gradient_flow", "gradient_heatmap", "update_ratio", "saturation", "snr")


def names(model: str = "mlp", cell: str | None = None) -> tuple[str, ...]:
    """The figures a run of ``model`` (a recurrent one's: of ``cell``, its name; None: of any cell) can draw, in
    drawing order."""
    if model == "rnn":
        return (*time_figures.names(cell), "update_ratio", "training", "jacobian")
    return (*MLP_FIGURES, "training", "histograms", "jacobian")


def every_name() -> tuple[str, ...]:
    """Every figure's name: an MLP's, then those only a recurrent run draws."""
    return tuple(dict.fromkeys((*names("mlp"), *names("rnn"))))


def asked(figures, name: str) -> bool:
    """Whether a run whose figures setting is ``figures`` draws the figure ``name``: True every one, False none."""
    return figures is True or (isinstance(figures, list) and name in figures)


def check(figures, model: str = "mlp", cell: str | None = None) -> None:
    """UsageError if ``figures`` (the setting: True, False or a list of names) names a figure that no run draws
    (with the nearest name) or one that this run (``model``, a recurrent one's ``cell``) cannot draw."""
    if not isinstance(figures, list):
        return
    drawable = names(model, cell)
    run = "an MLP run" if model == "mlp" else f"a recurrent run of cell {cell}"
    for name in figures:
        if name in drawable:
            continue
        if name in every_name():
            raise UsageError(f"figure {name!r} is not one that {run} draws; its figures: {', '.join(drawable)}")
        guess = validate.closest(name, every_name())
        raise UsageError(f"unknown figure {name!r}{f' (did you mean {guess}?)' if guess else ''}; the figures of "
                         f"{run}: {', '.join(drawable)}")  # fmt: skip


def drawings(path, records: list[dict], summary: dict, share: tuple[int, int] = (0, 1)) -> list[tuple]:
    """The run's figures as (matplotlib Figure, file name), titled, not saved; no pyplot, no backend touched: those
    its config.json's figures names (every figure if it names none: True, or False for ``Run.draw``).
    ``share``: as for ``rendered``."""
    measured = [r for r in records if r["layers"] and r["layers"][0].get("delta_norm") is not None]
    if not measured:
        return []
    # A run that diverged on an unmeasured step logged that step's weight gradients only: drawn too, as such.
    diverged = records[-1] if records[-1] is not measured[-1] and records[-1]["layers"] else None
    records = measured
    config = files.read_json(Path(path) / "config.json") or {}
    title = run_title(Path(path).name, config, summary)
    classes = (config.get("dataset") or {}).get("classes")
    if (summary.get("through_time") or {}).get("applies"):  # a recurrent run: its figures through time
        draws = {**time_figures.draws(records, summary), "update_ratio": lambda: update_ratio(records)}
    else:
        mlp = (
            lambda: gradient_flow(records, summary, diverged),
            lambda: gradient_heatmap(records),
            lambda: update_ratio(records),
            lambda: why_per_layer(records),
            lambda: gradient_snr(records, config.get("batch_size")),
        )
        draws = dict(zip(MLP_FIGURES, mlp))
    draws["training"] = lambda: training(records, classes, summary)
    histograms = Path(path) / "histograms.npz"
    if histograms.exists():
        draws["histograms"] = lambda: histogram_figure(files.read_npz(histograms, "histograms"))  # sizes checked
    if (summary.get("jacobian") or {}).get("applies"):
        draws["jacobian"] = lambda: jacobian_figure(summary["jacobian"])
    named = config.get("figures")
    if isinstance(named, list):  # only those named are made (drawing.py's processes deal shares of this list)
        draws = {name: draw for name, draw in draws.items() if name in named}
    drawn, width = [], None
    with np.errstate(all="ignore"):
        for i, (name, draw) in enumerate(draws.items()):
            if in_share(i, share[1]) != share[0]:
                continue
            fig, file = draw()
            assert file == f"{name}.png", (name, file)  # the name a figure is asked by is its file's
            width = _title(fig, title, width)
            drawn.append((fig, file))
    return drawn


def _title(fig, title: str, width: float | None) -> float:
    """The run's title over ``fig``, on two lines (broken at its " — ") where one would be wider than the figure
    (a narrow figure would cut it at both edges); returns the one line's width in inches, measured once per run
    (``width``: already measured), as every figure of a run has the same title."""
    text = fig.suptitle(title, fontsize=9)
    if width is None:
        width = text.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    if width > 0.98 * fig.get_figwidth() and " — " in title:
        text.set_text(title.replace(" — ", "\n", 1))
    return width


def in_share(position: int, count: int) -> int:
    """The share (of ``count``) that draws the figure at ``position``: dealt back and forth (0, 1, 1, 0, 0, 1, ...),
    so that the two heaviest figures of an MLP's run (SNR and histograms, 5th and 7th) fall in different shares."""
    turn = position % (2 * count)
    return turn if turn < count else 2 * count - 1 - turn


def run_title(name: str, config: dict, summary: dict) -> str:
    """``name: sigmoid, xavier_normal, depth 20, float64 — vanishing at init, r = 1.1e-12 (theory 2e-12)``."""
    init = (config.get("init_resolved") or {}).get("name") or config.get("init")  # "auto" says less than its name
    what = ", ".join(str(v) for v in (config.get("act"), init) if v)
    if config.get("model") == "rnn":
        what = ", ".join(str(v) for v in (time_report.cell_label(config.get("cell")), init) if v)
        what += f", T = {(config.get('dataset') or {}).get('seq_len')}, {config.get('dtype', 'float64')}"
    elif config.get("depth") is not None:
        what += f", depth {config['depth']}, {config.get('dtype', 'float64')}"
    name, what = plots.literal(name), plots.literal(what)  # user text: a $ in a name is no maths
    verdict = shown_verdict(summary)
    if verdict == "diverged":
        said = f"DIVERGED ({plots.literal(summary.get('message') or 'non-finite numbers')})"
    elif "ratio_init" in summary:
        ratio = summary["ratio_init"]
        said = f"{verdict} at init, $r$ = " + ("0 (the gradient underflowed)" if ratio == 0 else fmt(ratio, 3))
        theory = summary.get("theory") or {}
        if theory.get("applies"):
            said += f" (theory {fmt(theory['ratio'], 3)})"
    else:
        said = verdict or "no verdict"
    return f"{name}: {what} — {said}" if what else f"{name} — {said}"


def gradient_flow(records: list[dict], summary: dict, diverged: dict | None = None):
    """||δ|| and ||dL/dW|| across the layers at a few steps, on the fixed range, with the mean-field prediction.

    ``diverged``: the record of an unmeasured step the run diverged at (weight gradients only), drawn as such.
    """
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    count = len(records[0]["layers"])
    layers = np.arange(1, count + 1)
    first, last = records[0]["step"], (diverged or records[-1])["step"]
    cmap, kinds = plots.colormap(plots.STEP_COLORMAP), set()
    for record in plots.pick_steps(records):
        color = cmap((record["step"] - first) / max(last - first, 1))
        for ax, field in zip(axes, ("delta_norm", "weight_grad_norm")):
            kinds |= plots.draw_profile(ax, layers, plots.series([record], field)[0], color)
    if diverged is not None:
        kinds |= plots.draw_profile(axes[1], layers, plots.series([diverged], "weight_grad_norm")[0], "red",
                              label=f"step {diverged['step']} (diverged)")  # fmt: skip
    _theory_profile(axes[0], records[0], summary, count)
    for ax, label in zip(
        axes, (r"$\|\delta_\ell\| = \|\partial L/\partial z_\ell\|$", r"$\|\partial L/\partial W_\ell\|_F$")
    ):
        plots.norm_axis(ax, label)
        plots.layer_ticks(ax, count)
        ax.set_xlabel(r"layer $\ell$ (input side first)")
        ax.grid(alpha=0.3)
    _marker_legend(axes[1], kinds)
    plots.legend(axes[0], fontsize=7, loc="best")
    plots.colorbar(fig, axes[1], plots.STEP_COLORMAP, first, max(last, first + 1), "step")
    return fig, "gradient_flow.png"


def _marker_legend(ax, kinds: set[str]) -> None:
    """The measured lines' own labels, then what each edge marker means (only those drawn)."""
    from matplotlib.lines import Line2D

    handles = ax.get_legend_handles_labels()[0]
    if "underflow" in kinds:
        handles.append(Line2D([], [], color="grey", **plots.UNDERFLOW_MARKER, label="zero / below the axis"))
    if "above" in kinds:
        handles.append(Line2D([], [], color="grey", marker="^", linestyle="none", label="above the axis"))
    if "nonfinite" in kinds:
        handles.append(Line2D([], [], **plots.DIVERGED_MARKER, label="not finite (diverged)"))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def _theory_profile(ax, record: dict, summary: dict, count: int) -> None:
    """Mean field: δ_ℓ = δ_L · factor^(L-ℓ), anchored at the last hidden layer's measured δ at step 0."""
    theory = summary.get("theory") or {}
    factor, depth = number(theory.get("per_layer_factor")), count - 1
    anchor = number(record["layers"][depth - 1]["delta_norm"]) if depth >= 1 else math.nan
    if not theory.get("applies") or not math.isfinite(factor) or not (0 < anchor < math.inf):
        return
    hidden = np.arange(1, depth + 1)
    ax.plot(hidden, anchor * factor ** (depth - hidden), color="black", **plots.THEORY_STYLE,
            label=rf"mean-field theory, $\times${fmt(factor, 3)} per layer (step {record['step']})")  # fmt: skip


def gradient_heatmap(records: list[dict]):
    """log10 ||δ|| and log10 ||dL/dW||, layer x step, on one colour scale shared by every run."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    steps, count = [r["step"] for r in records], len(records[0]["layers"])
    x_edges = np.array([*steps, steps[-1] + max(1, steps[-1] - steps[-2] if len(steps) > 1 else 1)])
    y_edges = np.arange(count + 1) + 0.5
    low, high = np.log10(plots.NORM_RANGE)
    cmap = plots.colormap(plots.STEP_COLORMAP).with_extremes(under="white", over="red", bad="red")
    for ax, field, name in zip(axes, ("delta_norm", "weight_grad_norm"), (r"\|\delta\|", r"\|\partial L/\partial W\|")):
        grid = np.log10(plots.series(records, field)).T
        image = ax.pcolormesh(x_edges, y_edges, grid, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(rf"$\log_{{10}} {name}$ (white: zero, red: not finite)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(r"layer $\ell$")
        plots.layer_ticks(ax, count, axis="y")
    fig.colorbar(image, ax=axes[-1], label=r"$\log_{10}$ of the norm (both panels)", extend="both")
    return fig, "gradient_heatmap.png"


def update_ratio(records: list[dict]):
    """||ΔW|| / ||W|| per update for each layer over the steps, coloured by layer, with the 1e-3 rule of thumb."""
    updates, steps = plots.series(records, "update_ratio"), [r["step"] for r in records]
    count = len(records[0]["layers"])
    fig, ax = plots.figure(figsize=(8, 4))
    cmap = plots.colormap(plots.LAYER_COLORMAP)
    for index in range(count):
        ax.plot(steps, updates[:, index], color=cmap(index / max(count - 1, 1)), lw=1)
    ax.axhline(1e-3, color="red", ls="--", lw=1, label=r"$10^{-3}$ rule of thumb")
    if np.any(np.isfinite(updates) & (updates > 0)):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\|\Delta W_\ell\|_F \,/\, \|W_\ell\|_F$ per update")
    plots.legend(ax, fontsize=7)
    ax.grid(alpha=0.3)
    bar = plots.colorbar(fig, ax, plots.LAYER_COLORMAP, 0.5, count + 0.5, r"layer $\ell$")
    plots.layer_ticks(bar.ax, count, axis="y")
    return fig, "update_ratio.png"


def training(records: list[dict], classes, summary: dict):
    """Loss and accuracy, with the chance levels (ln C and 1/C, or the summary's ``chance`` for a task with its
    own: a regression's) and the divergence marked."""
    fig, axes = plots.figure(1, 2)
    steps = [r["step"] for r in records]
    axes[0].plot(steps, [r["loss"] for r in records], label="train batch")
    axes[1].plot(steps, [r["accuracy"] for r in records], label="train batch")
    tests = [r for r in records if r.get("test_loss") is not None]
    if tests:
        axes[0].plot([r["step"] for r in tests], [r["test_loss"] for r in tests], "o-", label="test")
        axes[1].plot([r["step"] for r in tests], [r["test_accuracy"] for r in tests], "o-", label="test")
    chance, guessed = dict(color="grey", ls=":", lw=1.5), summary.get("chance")
    if guessed:  # a task with its own chance levels (tasks.chance: a regression's mean predicted for all)
        axes[0].axhline(guessed["loss"], label=f"chance: {fmt(guessed['loss'], 3)}", **chance)
        axes[1].axhline(guessed["accuracy"], label=f"chance: {100 * guessed['accuracy']:.3g}$\\%$", **chance)
    elif classes:
        axes[0].axhline(math.log(classes), label=rf"chance: $\ln {classes}$ = {math.log(classes):.2f}", **chance)
        axes[1].axhline(1 / classes, label=rf"chance: 1/{classes} = {100 / classes:.3g}$\%$", **chance)
    if shown_verdict(summary) == "diverged":
        for ax in axes:
            ax.plot([steps[-1]], [0.98], transform=ax.get_xaxis_transform(), clip_on=False,
                    **plots.DIVERGED_MARKER, label=f"diverged (step {steps[-1]})")  # fmt: skip
    regression = summary.get("task") == "regression"
    axes[0].set_ylabel("mean squared error" if regression else "cross-entropy")
    axes[1].set_ylabel(f"accuracy (within {REGRESSION_TOLERANCE:g} of the target)" if regression else "accuracy")
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7)
    return fig, "training.png"
