"""A sweep's figures, drawn in the one style of show/plots.py and returned as Figures (tables.py saves them).

- r against depth: colour = activation, line style = init (two small legends), the mean-field prediction dashed,
  the healthy band shaded, diverged runs crossed and r = 0 drawn on the bottom edge, never dropped.
- the heatmap of log10 r: one panel per init on one diverging colour scale centred at r = 1 (plots.LOG_RATIO_RANGE);
  a cell beyond it is saturated and says so; "div" counts diverged runs.
- each run's step-0 delta profile: one panel per activation, colour = depth (a colorbar), line style = init.
"""

from __future__ import annotations

import math

import numpy as np

from ..show import plots
from ..show.format import decimal, number

SIGMOID_BOUND = 0.25  # sigmoid' <= 1/4: through the activation alone L-1 layers shrink r by up to 0.25^(L-1)
ZOOM = (1e-3, 1e3)  # the right panel of r against depth: around the healthy band, where most lines sit


def label(row: dict, keys: list[str], skip=("depth", "seed")) -> str:
    """What a line stands for, as key=value for the grid values other than ``skip`` ("all" if none)."""
    return ", ".join(f"{k}={row[k]}" for k in keys if k not in skip) or "all"


def log_ratio(row: dict, field: str = "ratio_init") -> float:
    """log10 of a row's ratio; -inf where it is 0 (vanished), nan where missing or not finite."""
    r = number(row.get(field))
    if r == 0:
        return -math.inf
    return math.log10(r) if r > 0 and math.isfinite(r) else math.nan


def diverged(row: dict) -> bool:
    """The run stopped on a non-finite loss."""
    return row.get("status") == "diverged"


def _styles(rows: list[dict], keys: list[str]):
    """(colour of a row, line style of a row, {name: colour}, {name: style}): colour = act, style = init.

    Without act in the grid the colour names the other grid values; without init every line is solid.
    """
    rest = [k for k in keys if k not in ("depth", "seed", "init")]
    by_colour = "act" if "act" in keys else None
    names = list(dict.fromkeys(r[by_colour] if by_colour else label(r, rest, ()) for r in rows))

    def colour_name(row):
        return row[by_colour] if by_colour else label(row, rest, ())

    inits = list(dict.fromkeys(r["init"] for r in rows)) if "init" in keys else []

    def style(row):
        return plots.init_linestyle(row["init"], inits) if inits else "-"

    colours = {n: plots.activation_color(n, names) for n in names}
    return (lambda row: colours[colour_name(row)]), style, colours, {i: plots.init_linestyle(i, inits) for i in inits}


def ratio_vs_depth(rows: list[dict], keys: list[str]):
    """r at step 0 against depth, full range (left) and zoomed on the healthy band (right). A Figure."""
    fig, axes = plots.figure(1, 2, figsize=(12, 5))
    colour, style, colours, styles = _styles(rows, keys)
    logs = [log_ratio(r, f) for r in rows for f in ("ratio_init", "predicted_ratio")]
    depths_all = sorted({r["depth"] for r in rows})
    if any(r.get("act") == "sigmoid" for r in rows):
        logs += [(d - 1) * math.log10(SIGMOID_BOUND) for d in depths_all]
    low, high = plots.log_limits(logs)
    groups = dict.fromkeys(label(r, keys) for r in rows)
    for ax, (bottom, top) in zip(axes, ((10**low, 10**high), ZOOM)):
        for name in groups:
            group = [r for r in rows if label(r, keys) == name]
            _draw_group(ax, group, colour(group[0]), style(group[0]), bottom)
        if any(r.get("act") == "sigmoid" for r in rows):
            bound = [SIGMOID_BOUND ** (d - 1) for d in depths_all]
            ax.plot(depths_all, bound, color="grey", lw=1, linestyle=(0, (1, 1)))
        ax.axhspan(*plots.HEALTHY_BAND, color="green", alpha=0.08)
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
        ax.set_xticks(depths_all)
        ax.set_xlabel("depth $L$ (hidden layers)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"$r = \|\delta_1\| \,/\, \|\delta_L\|$ at step 0")
    axes[0].set_title("full range: every run drawn")
    axes[1].set_title(r"zoom on the healthy band ($10^{-2} < r < 10^{2}$ shaded)")
    plots.style_legends(axes[0], colours, styles, extra=_extra_handles(rows), loc="upper right")
    return fig


def _draw_group(ax, group: list[dict], colour, style, bottom: float) -> None:
    """One series: the median over seeds with its min-max band, the theory dashed, diverged runs and r = 0 marked."""
    depths = sorted({r["depth"] for r in group})
    at = {d: [r for r in group if r["depth"] == d] for d in depths}
    logs = {d: [x for x in (log_ratio(r) for r in at[d]) if math.isfinite(x)] for d in depths}
    median = [10 ** np.median(logs[d]) if logs[d] else np.nan for d in depths]
    ax.plot(depths, median, color=colour, linestyle=style, lw=2, marker="o", ms=4)
    low = [10 ** min(logs[d]) if logs[d] else np.nan for d in depths]
    high = [10 ** max(logs[d]) if logs[d] else np.nan for d in depths]
    ax.fill_between(depths, low, high, color=colour, alpha=0.15, lw=0)
    theory = [np.median([10 ** log_ratio(r, "predicted_ratio") for r in at[d]]) for d in depths]
    ax.plot(depths, theory, color=colour, **{**plots.THEORY_STYLE, "linewidth": 1})
    for r in group:
        x = log_ratio(r)
        if diverged(r):  # at its r when that was measured, else on the top edge
            y, transform = (10**x, ax.transData) if math.isfinite(x) else (0.97, ax.get_xaxis_transform())
            ax.plot(r["depth"], y, **{**plots.DIVERGED_MARKER, "color": colour}, transform=transform)
        elif x == -math.inf:  # r = 0: the gradient vanished to exactly zero, drawn on the bottom edge
            ax.plot(r["depth"], bottom, **{**plots.UNDERFLOW_MARKER, "color": colour}, clip_on=False)


def _extra_handles(rows: list[dict]) -> list:
    """Legend entries for what is not a series: theory, the sigmoid bound, the band, the markers (when drawn)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="black", **{**plots.THEORY_STYLE, "linewidth": 1}, label="theory (mean field)"),
        Patch(color="green", alpha=0.15, label="healthy band"),
    ]
    if any(r.get("act") == "sigmoid" for r in rows):
        handles.append(Line2D([], [], color="grey", lw=1, linestyle=(0, (1, 1)), label=r"$0.25^{L-1}$ (sigmoid bound)"))
    if any(map(diverged, rows)):
        handles.append(Line2D([], [], **plots.DIVERGED_MARKER, label="diverged run"))
    if any(log_ratio(r) == -math.inf and not diverged(r) for r in rows):
        handles.append(Line2D([], [], **{**plots.UNDERFLOW_MARKER, "color": "black"}, label="$r = 0$ (vanished)"))
    return handles


def ratio_heatmap(rows: list[dict], keys: list[str]):
    """log10 r at step 0, activation x depth, one panel per init (median over seeds and the other parameters)."""
    inits = list(dict.fromkeys(r["init"] for r in rows)) if "init" in keys else [None]
    acts = list(dict.fromkeys(r["act"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    low, high = plots.LOG_RATIO_RANGE
    fig, axes = plots.figure(
        1, len(inits) + 1, figsize=(1.1 * len(depths) * len(inits) + 2.5, 0.45 * len(acts) + 2), squeeze=False,
        width_ratios=[1] * len(inits) + [0.05],
    )  # fmt: skip
    axes, bar_axes = axes[0, :-1], axes[0, -1]
    beyond = False
    for ax, init in zip(axes, inits):
        grid, lost = _cells(rows, acts, depths, init)
        image = ax.imshow(grid, cmap=plots.DIVERGING_COLORMAP, vmin=low, vmax=high, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            beyond |= _cell_text(ax, image, i, j, v, lost[i, j])
        ax.set_xticks(range(len(depths)), depths)
        ax.set_yticks(range(len(acts)), acts if ax is axes[0] else [""] * len(acts))
        ax.set_xlabel("depth $L$")
        if init is not None:
            ax.set_title(f"init = {init}")
    logs = [log_ratio(r) for r in rows]
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (any(x < low for x in logs), any(x > high for x in logs)), "neither"
    )
    bar = fig.colorbar(image, cax=bar_axes, extend=extend)
    bar.set_label(r"$\log_{10} r$ at step 0")
    notes = ["0 = healthy (r = 1), blue = vanishing, red = exploding; median over seeds"]
    notes += ["n div = runs that diverged"] if any(map(diverged, rows)) else []
    notes += [f"(<{low:g}) / (>{high:g}): beyond the colour scale, value printed"] if beyond else []
    if notes:
        fig.text(0.01, 0.005, "\n".join(notes), fontsize=7)
    return fig


def _cells(rows, acts, depths, init):
    """(median log10 r, number of diverged runs) per activation x depth for one init (None: all)."""
    grid = np.full((len(acts), len(depths)), np.nan)
    lost = np.zeros((len(acts), len(depths)), dtype=int)
    for i, a in enumerate(acts):
        for j, d in enumerate(depths):
            cell = [r for r in rows if r["act"] == a and r["depth"] == d and init in (None, r.get("init"))]
            values = [x for x in map(log_ratio, cell) if not math.isnan(x)]
            grid[i, j] = np.median(values) if values else np.nan
            lost[i, j] = sum(map(diverged, cell))
    return grid, lost


def _cell_text(ax, image, i, j, value, lost) -> bool:
    """Write a cell's value in a colour that reads on it (white on dark); True if the value is beyond the scale."""
    low, high = image.get_clim()
    if math.isnan(value):
        text, shade = "-", (1, 1, 1, 1)
    else:
        text = "$-\\infty$" if value == -math.inf else decimal(value, 1)
        shade = image.cmap(image.norm(min(max(value, low), high)))
    beyond = not math.isnan(value) and not low <= value <= high
    if beyond:
        text += f"\n({'<' if value < low else '>'}{low if value < low else high:g})"
    if lost:
        text += f"\n{lost} div"
    luminance = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2]
    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if luminance < 0.5 else "black")
    return beyond


def delta_profiles(rows: list[dict], keys: list[str], first_records: dict):
    """Each run's ||delta_l|| / ||delta_L|| at step 0 (``first_records``: run name -> its step-0 record).

    One panel per activation; colour = depth (a colorbar) when depth is in the grid, else the other grid values
    (a legend of key=value); line style = init. Diverged runs are crossed at their first layer.
    """
    panels = list(dict.fromkeys(r["act"] for r in rows)) if "act" in keys else [None]
    columns = min(4, len(panels))
    rows_of_panels = math.ceil(len(panels) / columns)
    fig, axes = plots.figure(
        rows_of_panels, columns + 1, figsize=(3.6 * columns + 1.5, 3.0 * rows_of_panels + 0.6), squeeze=False,
        width_ratios=[1] * columns + [0.05],
    )  # fmt: skip
    axes, bar_axes = axes[:, :-1], _one_axes(fig, axes[:, -1])
    profiles = {r["run"]: _profile(first_records.get(r["run"])) for r in rows}
    logs = [np.log10(p[p > 0]) for p in profiles.values() if p is not None and (p > 0).any()]
    low, high = plots.log_limits(np.concatenate(logs) if logs else [])
    colour, colours, styles, by_depth = _profile_colours(rows, keys)
    for ax, act in zip(axes.flat, panels):
        for row in (r for r in rows if act in (None, r.get("act"))):
            profile = profiles[row["run"]]
            if profile is None:
                continue
            _draw_profile(ax, profile, colour(row), styles.get(row.get("init"), "-"), diverged(row), 10**low, 10**high)
        ax.set_title(f"act = {act}" if act else label(rows[0], keys))
        ax.axhspan(*plots.HEALTHY_BAND, color="green", alpha=0.08)
        ax.set_yscale("log")
        ax.set_ylim(10**low, 10**high)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    through_time = any(record and record.get("through_time") for record in first_records.values())
    for ax in axes[-1]:
        ax.set_xlabel(r"time step $t$" if through_time else r"hidden layer $l$ (input side first)")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\|\delta_l\| \,/\, \|\delta_L\|$ at step 0")
    _profile_legends(fig, axes, bar_axes, rows, list(profiles.values()), colours, styles, by_depth)
    return fig


def _profile(record: dict | None):
    """||delta_l|| / ||delta_L|| over the hidden layers of a step-0 record (0 where it vanished); a recurrent run's
    ||dL/dh_t|| / ||dL/dh_T|| over its time steps; None if none."""
    if record is None:
        return None
    entries = record.get("through_time") or record["layers"][:-1]
    deltas = np.array([number(entry.get("delta_norm")) for entry in entries])
    if not (deltas[-1] > 0 and np.isfinite(deltas[-1])):  # the last delta vanished: no profile to draw
        return None
    return deltas / deltas[-1]


def _profile_colours(rows: list[dict], keys: list[str]):
    """(colour of a row, {name: colour} for a legend, {init: style}, depths for a colorbar or None)."""
    from matplotlib import colormaps

    inits = list(dict.fromkeys(r["init"] for r in rows)) if "init" in keys else []
    styles = {i: plots.init_linestyle(i, inits) for i in inits}
    if "depth" in keys:
        depths = sorted({r["depth"] for r in rows})
        cmap = colormaps[plots.DEPTH_COLORMAP]
        shade = {d: cmap(0.9 * k / max(1, len(depths) - 1)) for k, d in enumerate(depths)}
        return (lambda row: shade[row["depth"]]), {}, styles, depths
    rest = [k for k in keys if k not in ("act", "init", "seed")]
    names = list(dict.fromkeys(label(r, rest, ()) for r in rows))
    colours = {n: plots.activation_color(n, names) for n in names}
    return (lambda row: colours[label(row, rest, ())]), colours if rest else {}, styles, None


def _draw_profile(ax, profile, colour, style, crossed: bool, bottom: float, top: float) -> None:
    """One run's profile; layers whose delta vanished to 0 on the bottom edge, a cross on a diverged run."""
    layers = np.arange(1, len(profile) + 1)
    inside, zeros, _ = plots.clipped(profile, bottom, top)
    ax.plot(layers, inside, color=colour, linestyle=style, lw=1.2, alpha=0.85)
    if zeros.size:
        marker = {**plots.UNDERFLOW_MARKER, "color": colour}
        ax.plot(layers[zeros], np.full(zeros.size, bottom), **marker, clip_on=False)
    if crossed:
        first = inside[0] if np.isfinite(inside[0]) else bottom
        ax.plot(layers[0], first, **{**plots.DIVERGED_MARKER, "color": colour})


def _one_axes(fig, column):
    """Merge a column of subplots into one axes (a colorbar beside every row; laid out by tight_layout)."""
    spec = column[0].get_subplotspec().get_gridspec()
    for ax in column:
        ax.remove()
    return fig.add_subplot(spec[:, -1])


def _profile_legends(fig, axes, bar_axes, rows, profiles, colours, styles, depths) -> None:
    """A depth colorbar (or a key=value colour legend) and one small legend for init styles and the markers."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    if depths:
        cmap = colormaps[plots.DEPTH_COLORMAP]
        shades = [cmap(0.9 * k / max(1, len(depths) - 1)) for k in range(len(depths))]
        norm = BoundaryNorm(np.arange(len(depths) + 1) - 0.5, len(depths))
        bar = fig.colorbar(ScalarMappable(norm, ListedColormap(shades)), cax=bar_axes)
        bar.set_ticks(range(len(depths)), labels=[str(d) for d in depths])
        bar.set_label("depth $L$")
    else:
        bar_axes.set_visible(False)
    handles = [Line2D([], [], color=c, lw=2, label=n) for n, c in colours.items()]
    handles += [Line2D([], [], color="black", linestyle=s, label=f"init = {i}") for i, s in styles.items()]
    if any(map(diverged, rows)):
        handles.append(Line2D([], [], **plots.DIVERGED_MARKER, label="diverged run"))
    if any(p is not None and (p == 0).any() for p in profiles):
        handles.append(
            Line2D([], [], **{**plots.UNDERFLOW_MARKER, "color": "black"}, label=r"$\delta_l = 0$ (vanished)")
        )
    if handles:  # a legend box with nothing in it says nothing
        axes.flat[0].legend(handles=handles, fontsize=7, loc="lower right")
