"""One way to make and save a figure, for runs, sweeps and findings.

Figures are matplotlib ``Figure`` objects made without pyplot, so drawing never changes the caller's backend
or figures (a notebook's inline plots keep working); a figure is written whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

from . import rundir

DPI = 110


def figure(*grid, figsize=(10, 4), **options):
    """A new Figure and its axes (``grid`` as for ``Figure.subplots``), without touching pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def save(fig, path, dpi: int = DPI) -> None:
    """Lay out and write ``fig`` as a PNG at ``path``, whole or not at all (never through a link)."""
    fig.tight_layout()
    with rundir.atomic_file(Path(path), "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)


def legend(ax, **options) -> None:
    """A legend only where there is something to name (an empty legend is a matplotlib warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)
