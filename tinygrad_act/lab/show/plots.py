"""One way to make and save a figure, for runs, sweeps and findings.

Figures are matplotlib ``Figure`` objects made without pyplot, so drawing never changes the caller's backend
or figures (a notebook's inline plots keep working); a figure is written whole or not at all.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from pathlib import Path

import numpy as np

from ...common import files
from ...common.errors import RunDirError, UsageError
from ...common.reads import read_start
from .format import number

DPI = 110
PNG_COMPRESSION = 3  # zlib's level: the default run's eight PNGs 1% smaller than at PIL's default 6, 1/3 less time
SIGNATURE = "tinygrad_act"  # a PNG's Software text: the mark of a picture this package wrote (``signed``)


def unavailable() -> str | None:
    """None if matplotlib can be imported, else the line that says figures are skipped and how to get them."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "figures skipped: matplotlib is not installed (pip install 'tinygrad_act[plot]' or make experiment)"
    return None


def figure(*grid, figsize=(10, 4), **options):
    """A new Figure and its axes (``grid`` as for ``Figure.subplots``), without touching pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    _canvas(os.getpid())(fig)  # attaches itself to the figure
    return fig, fig.subplots(*grid, **options)


@functools.cache
def _canvas(pid: int):
    """The Agg canvas every figure here is drawn on in process ``pid``, its renderers sharing one mathtext parser: a
    parser caches the labels it parsed (a log axis's 10^-3, ..., the title), but matplotlib makes one per renderer,
    two per figure (layout and PNG), and keeps 50 labels for all parsers, so that a process drawing many figures
    (a sweep, a findings report) parsed the same tick labels again and again: this one keeps every label it parsed
    (test_findings.py's 60 figures: 11.3 -> 9.1 s of CPU, load 7). The same pictures, byte for byte. One per
    process: the parsed labels hold FreeType fonts whose open file a forked process would share (its offset too),
    so a fork (lab/show/drawing.py) reading glyphs through its parent's parser fails at random ("FT_Load_Glyph ...
    invalid outline"); matplotlib's own font cache is cleared in a fork for the same reason."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.mathtext import MathTextParser

    class Parser(MathTextParser):
        def __init__(self):
            super().__init__("path")
            self.parsed = {}

        def parse(self, s, dpi=72, prop=None, *, antialiased=None):
            antialiased = matplotlib.rcParams["text.antialiased"] if antialiased is None else antialiased
            key = (s, dpi, None if prop is None else prop.copy(), antialiased)  # as matplotlib's own cache
            if key not in self.parsed:
                self.parsed[key] = super().parse(s, dpi, prop, antialiased=antialiased)
            return self.parsed[key]

    parser = Parser()

    class Canvas(FigureCanvasAgg):
        def get_renderer(self):
            renderer = super().get_renderer()
            renderer.mathtext_parser = parser
            return renderer

    return Canvas


def save(fig, path, dpi: int = DPI, signed: str = "") -> None:
    """Lay out and write ``fig`` as a PNG at ``path``, whole or not at all (never through a link); ``signed`` names
    what wrote it in the PNG's Software text (``signed`` below), so that a later write knows the file is its own."""
    files.atomic_write(Path(path), png(fig, dpi, signed))


def png(fig, dpi: int = DPI, signed: str = "") -> bytes:
    """``fig`` laid out and encoded as the PNG file ``save`` writes (drawing.py renders in another process).

    Laid out at the dpi it is drawn at, so that layout and drawing share one renderer and its measured text (laid
    out at the figure's 100 dpi, every label was measured again at 110), and drawn once: ``tight_layout`` leaves a
    placeholder layout engine behind, for which ``savefig`` draws the whole figure once more without rendering it.
    zlib's level 3 (PNG_COMPRESSION) is lossless like the default 6, at two thirds of the time and as small."""
    fig.set_dpi(dpi)
    fig.tight_layout()
    fig.set_layout_engine(None)  # laid out: nothing left for savefig to lay out
    metadata = {"Software": f"{SIGNATURE} {signed}"} if signed else None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=metadata, pil_kwargs={"compress_level": PNG_COMPRESSION})
    return buffer.getvalue()


def signed(path, what: str) -> bool:
    """Whether ``path`` is a PNG that ``save(..., signed=what)`` wrote (its text chunks, read before the image data)."""
    try:
        head = read_start(path, "picture")
    except (UsageError, RunDirError):
        return False
    if not head.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    offset = 8
    while offset + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[offset : offset + 8])
        if kind == b"IDAT":
            return False
        if kind == b"tEXt" and head[offset + 8 : offset + 8 + length] == f"Software\0{SIGNATURE} {what}".encode():
            return True
        offset += 12 + length
    return False


def literal(text) -> str:
    """``text`` as matplotlib shows it, never read as maths: a user's ``$`` (a run named ``cost$5$``) stays a dollar."""
    return str(text).replace("$", r"\$")


def legend(ax, **options) -> None:
    """A legend only where there is something to name (an empty legend is a matplotlib warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


# ---- One style (run, sweep, findings and compare figures) --------------------------------------------------
# Gradient norms are drawn on one fixed log range, the same for every run, so that a healthy profile (under a
# decade of spread) looks flat and a vanishing one (ten decades and more) looks steep. Values outside the range
# are drawn at its edge as markers, never dropped.
NORM_RANGE = (1e-16, 1e4)
# Heatmaps of log10 r or log10 ||grad||: one shared colour scale, diverging around 0 (r = 1, healthy).
LOG_RATIO_RANGE = (-16.0, 16.0)
HEALTHY_BAND = (1e-2, 1e2)  # stats.VANISHING_BELOW .. stats.EXPLODING_ABOVE, shaded on ratio axes
STEP_COLORMAP = "viridis"  # steps of one run: early dark, late light
LAYER_COLORMAP = "plasma"  # layers of one run: input side dark, output light
DIVERGING_COLORMAP = "RdBu_r"
UNDERFLOW_MARKER = dict(marker="v", markersize=8, markerfacecolor="white", linestyle="none")  # a gradient of 0
DIVERGED_MARKER = dict(marker="X", markersize=9, linestyle="none", color="black")  # a run that diverged
THEORY_STYLE = dict(linestyle="--", linewidth=1.2, alpha=0.8)  # the mean-field prediction beside a measurement
_PALETTE = (  # colour-blind-safe (Okabe & Ito 2008, then Tol), up to 16 activations; pale yellows last (faint on white)
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255",
    "#332288", "#117733", "#999933", "#AA4499", "#44AA99", "#88CCEE", "#DDCC77", "#F0E442",
)  # fmt: skip
_LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))


def activation_color(name: str, names: list[str]) -> str:
    """The colour of an activation among ``names`` (the activations one figure shows): distinct for up to 16."""
    return _PALETTE[sorted(set(names)).index(name) % len(_PALETTE)]


def init_linestyle(name: str, names: list[str]):
    """The line style of an initializer among ``names`` (colour = activation, line style = init)."""
    return _LINESTYLES[sorted(set(names)).index(name) % len(_LINESTYLES)]


def layer_ticks(ax, count: int, axis: str = "x", output: bool = True) -> None:
    """Integer layer ticks 1..count-1 and "out" for the output layer (at most ~12 labels; ``output`` False: the
    last is its number, for hidden layers only)."""
    stride = max(1, round(count / 12))
    ticks = [*range(1, count - stride // 2, stride), count]  # no label crowding the last one
    labels = [str(t) for t in ticks[:-1]] + ["out" if output else str(count)]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks, labels)


def norm_axis(ax, label: str, axis: str = "y") -> None:
    """A log axis over NORM_RANGE with a rendered-maths label, the same for every run."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    (ax.set_ylim if axis == "y" else ax.set_xlim)(*NORM_RANGE)
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(label)


def clipped(values, low: float = NORM_RANGE[0], high: float = NORM_RANGE[1]):
    """(values inside [low, high] with the rest as nan, positions of zeros/underflows, positions above high)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        below = np.flatnonzero(~(values >= low) & np.isfinite(values))
        above = np.flatnonzero((values > high) | np.isposinf(values))
        inside = np.where((values >= low) & (values <= high), values, np.nan)
    return inside, below, above


DEPTH_COLORMAP = "viridis"  # depths of a sweep: shallow dark, deep light (a colorbar names them)


def log_limits(logs, base=LOG_RATIO_RANGE, step: float = 8.0) -> tuple[float, float]:
    """``base`` widened in whole ``step``s of decades until every finite log10 value fits: shared, never clipped."""
    logs = np.asarray(logs, dtype=np.float64)
    logs = logs[np.isfinite(logs)]
    low, high = base
    if logs.size:
        low -= step * max(0, np.ceil((low - logs.min()) / step))
        high += step * max(0, np.ceil((logs.max() - high) / step))
    return float(low), float(high)


def style_legends(ax, colors: dict, styles: dict, extra=(), loc="upper left", style_loc="lower left", **options):
    """Two compact legends instead of one entry per line: colour -> name (``colors``) and line style -> name
    (``styles``, left out when it has a single entry); ``extra`` handles (theory, diverged, ...) join the first."""
    from matplotlib.lines import Line2D

    options = {"fontsize": 7, "framealpha": 0.9, **options}
    handles = [Line2D([], [], color=c, lw=2, label=literal(name)) for name, c in colors.items()] + list(extra)
    first = ax.legend(handles=handles, loc=loc, **options)
    if len(styles) > 1:
        ax.add_artist(first)
        lines = [
            Line2D([], [], color="black", linestyle=s, lw=1.5, label=f"init = {literal(name)}")
            for name, s in styles.items()
        ]
        ax.legend(handles=lines, loc=style_loc, **options)


# ---- Pieces every figure of a run draws with ----------------------------------------------------------------
def colormap(name: str):
    """A matplotlib colormap by name (matplotlib imported only when figures are drawn)."""
    from matplotlib import colormaps

    return colormaps[name]


def series(records: list[dict], field: str) -> np.ndarray:
    """records x layers array of a per-layer field (nan where missing or not measured)."""
    return np.array([[number(layer.get(field)) for layer in r["layers"]] for r in records], dtype=float)


def pick_steps(records: list[dict], count: int = 5) -> list[dict]:
    """At most ``count`` records spread evenly over the run, the first and the last included."""
    if len(records) <= count:
        return records
    picks = np.unique(np.linspace(0, len(records) - 1, count).round().astype(int))
    return [records[i] for i in picks]


def colorbar(fig, ax, cmap: str, low: float, high: float, label: str):
    """A colour bar for lines coloured by ``cmap`` over [low, high] (not an image)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(low, high), cmap)
    return fig.colorbar(mappable, ax=ax, label=label)


def draw_profile(ax, layers, values, color, label=None, linestyle="-") -> set[str]:
    """One measured profile on a NORM_RANGE axis: zeros and underflows as markers at the bottom edge, values
    above the range at the top edge, non-finite values (divergence) as DIVERGED_MARKER at the top: never dropped.
    Returns the kinds of marker drawn ("underflow", "above", "nonfinite")."""
    values = np.asarray(values, dtype=float)
    inside, below, above = clipped(values)
    ax.plot(layers, inside, marker="o", ms=3, color=color, label=label, linestyle=linestyle)
    low, high = NORM_RANGE
    edge = dict(clip_on=False, zorder=5)
    if below.size:
        ax.plot(layers[below], np.full(below.size, low), markeredgecolor=color, **UNDERFLOW_MARKER, **edge)
    nonfinite = np.flatnonzero(~np.isfinite(values) & ~np.isneginf(values))
    large = np.setdiff1d(above, nonfinite)
    if large.size:
        ax.plot(layers[large], np.full(large.size, high), marker="^", linestyle="none", color=color, **edge)
    if nonfinite.size:
        ax.plot(layers[nonfinite], np.full(nonfinite.size, high), **DIVERGED_MARKER, **edge)
    return {kind for kind, where in (("underflow", below), ("above", large), ("nonfinite", nonfinite)) if where.size}
